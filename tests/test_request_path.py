"""One request path: ``/ask`` and ``/ask/stream`` (the page's endpoint) go through the same
service runtime (api/runtime.py), and the limits a client sees are the settings' own.

In-process (ASGI) where the test is about the app; the concurrency test runs a real uvicorn.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_settings, sse, start_server, stop_server
from tests.fake_llm import FakeLLM, Reply

pytestmark = [pytest.mark.model]

Q = "Helm 怎么回滚？"


def _client(index, **kw) -> TestClient:
    from api.main import create_app

    return TestClient(create_app(make_settings(index, **kw)))


def _ask(c, path: str, **params):
    if path == "POST /ask":
        return c.post("/ask", json={"question": Q, **params})
    return c.get(path.split()[1], params={"q": Q, **params})


def _answer(r) -> dict:
    assert r.status_code == 200, r.text
    if r.headers["content-type"].startswith("text/event-stream"):
        events = sse(r.text)
        assert events[-1][0] == "answer", events
        return events[-1][1]
    return r.json()


PATHS = ["POST /ask", "GET /ask", "GET /ask/stream"]


# ---- load shedding ---------------------------------------------------------------------------
def test_the_stream_is_shed_like_ask_beyond_max_pending(built_index):
    """QA_MAX_PENDING counts stream questions too, and a refused one gets /ask's 503 body."""
    with _client(built_index, max_pending=3) as c:
        holder = c.app.state.holder
        holder.get()
        holder.pending = 3  # as if three questions were being answered
        try:
            refused = {p: _ask(c, p) for p in PATHS}
        finally:
            holder.pending = 0
        bodies = {p: (r.status_code, r.headers.get("retry-after"), r.json()) for p, r in refused.items()}
        assert len(set(json.dumps(b, sort_keys=True) for b in bodies.values())) == 1, bodies
        status, retry, body = bodies["GET /ask/stream"]
        assert status == 503 and retry == "1" and body["error"]["code"] == "busy"
        metrics = c.get("/metrics").text
        assert 'qa_rejected_total{reason="busy"} 3.0' in metrics
        for p in PATHS:  # and once there is room, every route answers again
            assert _answer(_ask(c, p))["citations"]
        assert holder.pending == 0  # a finished stream no longer counts


def test_a_stream_the_client_leaves_stops_counting_as_pending(built_index):
    with _client(built_index, max_pending=1) as c:
        with c.stream("GET", "/ask/stream", params={"q": Q}) as r:
            assert r.status_code == 200
            next(r.iter_lines())  # the first event, then the client goes away
        deadline = time.monotonic() + 30
        while c.app.state.holder.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.app.state.holder.pending == 0
        assert _answer(_ask(c, "GET /ask/stream"))["citations"]  # the one place is free again


# ---- QA_TOP_K reaches HTTP -------------------------------------------------------------------
def test_qa_top_k_is_the_default_over_http_and_an_explicit_top_k_wins(built_index, monkeypatch):
    monkeypatch.setenv("QA_TOP_K", "2")
    with _client(built_index) as c:
        for p in PATHS:
            assert len(_answer(_ask(c, p))["citations"]) == 2, p
            assert len(_answer(_ask(c, p, top_k=4))["citations"]) == 4, p
        for bad in (0, 51, True, "3", 2.5, None):  # absent is the default; null is not a number
            r = c.post("/ask", json={"question": Q, "top_k": bad})
            assert r.status_code == 422, (bad, r.text)
        for bad in ("0", "51", "3.0", " 3", "true", ""):
            for path in ("/ask", "/ask/stream"):
                r = c.get(path, params={"q": Q, "top_k": bad})
                assert r.status_code == 422, (path, bad, r.text)


# ---- the question's length: one limit, published -----------------------------------------------
def test_openapi_publishes_the_question_limit_the_server_applies(built_index):
    with _client(built_index, max_question_chars=120) as c:
        schema = c.get("/openapi.json").json()
        assert schema["components"]["schemas"]["AskRequest"]["properties"]["question"]["maxLength"] == 120
        for path in ("/ask", "/ask/stream"):
            q = next(p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "q")
            assert q["schema"]["maxLength"] == 120, path
        top_k = schema["components"]["schemas"]["AskRequest"]["properties"]["top_k"]
        assert "QA_TOP_K" in top_k["description"]
        ok, too_long = "问" * 120, "问" * 121
        for p in PATHS:
            r = c.post("/ask", json={"question": too_long}) if p == "POST /ask" else c.get(p.split()[1], params={"q": too_long})
            assert 400 <= r.status_code < 500, (p, r.text)
            err = r.json()["error"]
            assert err["code"] == "question_too_long" and "121" in err["message"] and "120" in err["message"], err
            r = c.post("/ask", json={"question": ok}) if p == "POST /ask" else c.get(p.split()[1], params={"q": ok})
            assert r.status_code == 200, (p, r.text)


def test_the_default_limit_is_500_in_the_schema_and_at_the_door(built_index):
    with _client(built_index) as c:
        schema = c.get("/openapi.json").json()
        assert schema["components"]["schemas"]["AskRequest"]["properties"]["question"]["maxLength"] == 500
        r = c.post("/ask", json={"question": "问" * 501})
        assert r.status_code == 422 and "500" in r.json()["error"]["message"]
        # counted as sent, like maxLength: a control character or space that is stripped still counts
        for padded in ("\x1c" + "问" * 500, "问" * 500 + " ", "\x1c" + "问" * 499 + " "):
            r = c.post("/ask", json={"question": padded})
            assert r.status_code == 422 and r.json()["error"]["code"] == "question_too_long", repr(padded[:3])
        r = c.post("/ask", json={"question": "  Helm 怎么回滚？\n"})
        assert r.status_code == 200 and r.json()["question"] == "Helm 怎么回滚？"  # answered stripped


def test_chat_and_library_refuse_by_the_same_rule(built_index):
    from qa.assistant import Assistant, QuestionError
    from qa.chat import MARKDOWN, Chat

    settings = make_settings(built_index, max_question_chars=30)
    bot = Assistant.open(built_index, settings=settings)
    with pytest.raises(QuestionError, match="the limit is 30"):
        bot.ask("问" * 31)
    chat = Chat(bot, max_question_chars=settings.max_question_chars)
    reply = chat.reply("问" * 31, MARKDOWN)
    assert "30" in reply.text and "31" in reply.text


# ---- the Assistant's query encoder is injected, not patched in ------------------------------------
def test_the_assistant_embeds_questions_with_the_injected_query_encoder(built_index):
    """What the service does with the batcher, any caller can do: ``Assistant(query_encoder=)``
    is given the loaded Embedder (an :class:`qa.encoder.Encoder`) and returns what questions are
    embedded with."""
    import numpy as np

    from qa.assistant import Assistant
    from qa.encoder import Encoder

    seen: list[str] = []

    class Counting:  # wraps the real model; counts the questions it embeds
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode_query(self, text):
            seen.append(text)
            return self.inner.encode_query(text)

    given = []
    bot = Assistant.open(built_index, settings=make_settings(built_index),
                         query_encoder=lambda emb: given.append(emb) or Counting(emb))
    assert len(given) == 1 and isinstance(given[0], Encoder)
    assert np.allclose(given[0].encode([Q], "query")[0], given[0].encode_query(Q), atol=1e-5)
    assert given[0].encode(["Helm 是包管理器。"], "passage").shape == (1, given[0].dim)
    answer = bot.ask(Q)
    assert seen == [Q] and answer.citations
    bot.use_query_encoder(None)  # back to the plain embedder
    bot.ask("k8s 和 Docker 是什么关系？")
    assert seen == [Q] and bot.embedder is given[0]


# ---- the bots' body limit is the setting ----------------------------------------------------------
def test_bot_bodies_are_bounded_by_qa_max_bot_body_bytes(built_index, monkeypatch):
    import hashlib
    import hmac

    secret = "slack-signing-secret"

    def signed(body: bytes) -> dict:
        ts = str(int(time.time()))
        sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig, "Content-Type": "application/json"}

    small = json.dumps({"type": "url_verification", "challenge": "x" * 3000}).encode()
    with _client(built_index, slack_signing_secret=secret, max_bot_body_bytes=2048) as c:
        r = c.post("/bots/slack/events", content=small, headers=signed(small))
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", r.text
    # above the old built-in 1 MB cap, under the setting: accepted
    big = json.dumps({"type": "url_verification", "challenge": "x" * 1_200_000}).encode()
    with _client(built_index, slack_signing_secret=secret, max_bot_body_bytes=2_000_000) as c:
        r = c.post("/bots/slack/events", content=big, headers=signed(big))
        assert r.status_code == 200 and len(r.json()["challenge"]) == 1_200_000, r.text[:200]


# ---- the real server: concurrent stream questions are shed ---------------------------------------
@pytest.fixture(scope="module")
def llm():
    server = FakeLLM()
    yield server
    server.close()


@pytest.mark.server
def test_concurrent_stream_questions_are_shed_like_ask_over_real_http(built_index, llm):
    """With QA_MAX_PENDING=2 and two stream answers waiting on a (held) LLM, more concurrent
    /ask/stream and /ask questions are all refused at once with the same 503; the two held
    ones finish with their answer, and then the stream answers again."""
    srv = start_server(
        built_index,
        {"QA_MAX_PENDING": "2", "QA_LLM_BASE_URL": llm.url, "QA_LLM_MODEL": "test", "QA_LLM_TIMEOUT_S": "60",
         "QA_LLM_CONCURRENCY": "4"},
        ready_path="/readyz", timeout=240,
    )
    gate, arrived = threading.Event(), threading.Semaphore(0)

    def held(body):
        arrived.release()
        gate.wait(60)
        return Reply("好的[1]。")

    llm.script = held
    try:
        held_results: list[str] = []

        def stream_one():
            with httpx.stream("GET", srv.url + "/ask/stream", params={"q": Q}, timeout=90) as r:
                held_results.append(f"{r.status_code}\n" + r.read().decode())

        holders = [threading.Thread(target=stream_one) for _ in range(2)]
        for t in holders:
            t.start()
        for _ in holders:  # both admitted and waiting on the LLM
            assert arrived.acquire(timeout=90)

        extra: list[httpx.Response] = []
        barrier = threading.Barrier(8)

        def one(kind: str):
            barrier.wait()
            if kind == "stream":
                extra.append(httpx.get(srv.url + "/ask/stream", params={"q": Q}, timeout=30))
            else:
                extra.append(httpx.post(srv.url + "/ask", json={"question": Q}, timeout=30))

        threads = [threading.Thread(target=one, args=(k,)) for k in ["stream"] * 6 + ["ask"] * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(extra) == 8
        assert all(r.status_code == 503 for r in extra), [r.text for r in extra]
        assert {json.dumps(r.json(), sort_keys=True) for r in extra} == {
            json.dumps(extra[0].json(), sort_keys=True)}  # one error shape for both routes
        assert extra[0].json()["error"]["code"] == "busy"
        assert all(r.headers["retry-after"] == "1" for r in extra)

        gate.set()
        for t in holders:
            t.join(90)
        assert len(held_results) == 2
        for text in held_results:
            status, _, body = text.partition("\n")
            assert status == "200" and sse(body)[-1][0] == "answer", body[-300:]
        r = httpx.get(srv.url + "/ask/stream", params={"q": Q}, timeout=60)
        assert r.status_code == 200 and sse(r.text)[-1][0] == "answer"
        metrics = httpx.get(srv.url + "/metrics").text
        busy = next(ln for ln in metrics.splitlines() if ln.startswith('qa_rejected_total{reason="busy"}'))
        assert float(busy.split()[-1]) == 8
    finally:
        gate.set()
        llm.script = lambda body: Reply("好的[1]。")
        stop_server(srv)
