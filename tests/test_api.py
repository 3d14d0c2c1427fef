"""The HTTP API over a real uvicorn process on 127.0.0.1 (the no-index case in process)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = [pytest.mark.model]


def test_post_ask_returns_cited_answer(server):
    r = httpx.post(server.url + "/ask", json={"question": "k8s 和 Docker 是什么关系", "top_k": 3}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"question", "answer", "abstained", "citations", "took_ms", "index"}
    assert body["abstained"] is False
    assert len(body["citations"]) == 3
    top = body["citations"][0]
    assert "docker-k8s" in top["path"] and top["heading"]
    assert top["line_start"] <= top["line_end"]
    assert body["index"]["model"] == "multilingual-e5-small"
    assert body["index"]["generation"].startswith("gen-")


def test_get_ask_matches_post(server):
    r = httpx.get(server.url + "/ask", params={"q": "Helm 怎么回滚？"}, timeout=30)
    assert r.status_code == 200
    assert "helm rollback" in r.json()["answer"]


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({"question": ""}, "question"),
        ({"question": "   \n "}, "empty"),
        ({"question": "问" * 600}, "limit"),
        ({"question": "k8s", "top_k": 0}, "top_k"),
        ({"question": "k8s", "top_k": 500}, "top_k"),
        ({"q": "k8s"}, "question"),
    ],
)
def test_bad_requests_get_422_with_a_message(server, payload, fragment):
    r = httpx.post(server.url + "/ask", json=payload, timeout=30)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] and fragment in err["message"], err


def test_malformed_json_is_a_clear_4xx(server):
    r = httpx.post(server.url + "/ask", content=b"{not json", headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 422
    assert "error" in r.json()


def test_health_ready_docs(server):
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz").json()
    assert ready["ready"] is True and ready["generation"].startswith("gen-")
    assert httpx.get(server.url + "/openapi.json").json()["paths"]["/ask"]
    assert httpx.get(server.url + "/docs").status_code == 200


def test_off_topic_abstains_over_http(server):
    body = httpx.post(server.url + "/ask", json={"question": "如何做一道红烧肉？"}, timeout=30).json()
    assert body["abstained"] is True and body["citations"] == []


def test_no_index_yet_is_503_with_the_command(tmp_path):
    """In process (TestClient, start-up and shutdown run): the 503 and its hint are the app's."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.conftest import make_settings

    with TestClient(create_app(make_settings(tmp_path / "empty-index"))) as c:
        r = c.post("/ask", json={"question": "k8s 是什么"})
        assert r.status_code == 503
        assert "qa ingest" in r.json()["error"]["message"]
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 503
