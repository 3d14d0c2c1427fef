"""The LLM writer behind the real server (uvicorn on 127.0.0.1): token events on /ask/stream,
the verified answer last, /ask falling back when the endpoint fails, and the LLM metrics."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import sse, start_server, stop_server
from tests.fake_llm import FakeLLM, Reply
from tests.test_writers import Q, cited


@pytest.fixture(scope="module")
def llm():
    server = FakeLLM()
    yield server
    server.close()


@pytest.fixture(scope="module")
def llm_server(built_index, llm):
    srv = start_server(built_index, {"QA_LLM_BASE_URL": llm.url, "QA_LLM_MODEL": "test", "QA_LLM_TIMEOUT_S": "1.5"},
                       ready_path="/readyz", timeout=240)
    yield srv
    stop_server(srv)


def test_stream_sends_tokens_then_the_verified_answer(llm_server, llm):
    llm.script = lambda body: Reply(cited(body, "30 分钟", "缓存数据每周会自动迁移到磁盘[1]。"))
    r = httpx.get(llm_server.url + "/ask/stream", params={"q": Q}, timeout=60)
    events = sse(r.text)
    kinds = [e for e, _ in events]
    assert kinds[:2] == ["progress", "progress"] and kinds[-1] == "answer"
    tokens = [d["text"] for e, d in events if e == "token"]
    assert len(tokens) > 1 and "30 分钟" in "".join(tokens)
    answer = events[-1][1]
    assert answer["writer"] == "llm"
    assert [s["supported"] for s in answer["sentences"]] == [True, False]


def test_ask_falls_back_when_the_endpoint_fails(llm_server, llm):
    llm.script = lambda body: Reply(status=500)
    r = httpx.post(llm_server.url + "/ask", json={"question": Q}, timeout=60)
    assert r.status_code == 200
    body = r.json()
    assert body["writer"] == "extractive" and body["writer_fallback_reason"] == "http_500"
    assert "30 分钟" in body["answer"]
    metrics = httpx.get(llm_server.url + "/metrics").text
    assert 'qa_llm_fallbacks_total{reason="http_500"}' in metrics
    assert "qa_llm_request_duration_seconds_count" in metrics and 'qa_llm_tokens_total{kind="completion"}' in metrics


def test_hanging_endpoint_still_answers(llm_server, llm):
    llm.script = lambda body: Reply("迟到的回答[1]。", delay_s=5)
    r = httpx.get(llm_server.url + "/ask", params={"q": Q}, timeout=60)
    assert r.status_code == 200 and r.json()["writer_fallback_reason"] == "timeout"
