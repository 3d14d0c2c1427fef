"""Conversations through the real server: /ask, GET /ask and /ask/stream with conversation_id."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from qa.conversations import new_id


def ask(server, question: str, conversation_id: str | None = None, **kw) -> httpx.Response:
    body = {"question": question, **kw}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    return httpx.post(server.url + "/ask", json=body, timeout=60)


def stream_events(server, params: dict) -> list[tuple[str, dict]]:
    r = httpx.get(server.url + "/ask/stream", params=params, timeout=60)
    assert r.status_code == 200, r.text
    out = []
    for block in r.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_a_follow_up_continues_the_conversation_it_names(server):
    first = ask(server, "Redis 缓存是怎么设计的？").json()
    cid = first["conversation_id"]
    assert first["conversation"] == {"id": cid, "turn": 1, "new": True, "restarted": False, "followup": None, "notice": None}
    assert first["searched"] is None
    follow = ask(server, "它默认多久过期？", cid)
    assert follow.status_code == 200
    f = follow.json()
    assert f["conversation_id"] == cid and f["conversation"]["turn"] == 2 and not f["conversation"]["new"]
    assert f["question"] == "它默认多久过期？" and "Redis" in f["searched"]
    assert f["conversation"]["followup"] == "pronoun 它"
    assert "30 分钟" in f["answer"] and f["citations"][0]["path"].endswith("redis-cache.md")
    # GET /ask continues the same conversation
    g = httpx.get(server.url + "/ask", params={"q": "那 Helm 呢？", "conversation_id": cid}, timeout=60).json()
    assert g["conversation_id"] == cid and g["conversation"]["turn"] == 3 and g["searched"].startswith("Helm")


def test_the_same_follow_up_without_a_conversation_is_searched_as_asked(server):
    r = ask(server, "它默认多久过期？").json()
    assert r["searched"] is None and r["conversation"]["new"] and r["conversation"]["followup"] is None


def test_stream_says_what_is_searched_and_continues_the_conversation(server):
    cid = ask(server, "Helm 怎么回滚一个 release？").json()["conversation_id"]
    events = stream_events(server, {"q": "它怎么安装 chart？", "conversation_id": cid})
    kinds = [e for e, _ in events]
    assert kinds == ["progress", "progress", "answer"]
    assert events[0][1]["stage"] == "searching" and "Helm" in events[0][1]["searched"]
    answer = events[-1][1]
    assert answer["conversation_id"] == cid and answer["conversation"]["turn"] == 2
    assert answer["searched"] == events[0][1]["searched"]
    # a stream without an id starts a conversation that POST /ask can continue
    fresh = stream_events(server, {"q": "Redis 缓存是怎么设计的？"})[-1][1]
    assert fresh["conversation"]["new"] and fresh["searched"] is None
    more = ask(server, "它默认多久过期？", fresh["conversation_id"]).json()
    assert more["conversation"]["turn"] == 2 and "Redis" in more["searched"]


def test_ids_of_the_wrong_form_are_422_and_unknown_ids_start_afresh(server):
    for bad in ("x", "cv_" + "!" * 24, "' OR 1=1 --", "cv_" + "a" * 30):
        for r in (
            ask(server, "Helm 是什么？", bad),
            httpx.get(server.url + "/ask", params={"q": "Helm 是什么？", "conversation_id": bad}, timeout=30),
            httpx.get(server.url + "/ask/stream", params={"q": "Helm 是什么？", "conversation_id": bad}, timeout=30),
        ):
            assert r.status_code == 422, (bad, r.text)
            assert "conversation_id" in r.json()["error"]["message"]
    unknown = new_id()
    r = ask(server, "它默认多久过期？", unknown).json()
    assert r["conversation_id"] != unknown and r["conversation"]["new"] and r["conversation"]["restarted"]
    assert "new conversation" in r["conversation"]["notice"] and r["searched"] is None


def test_conversations_do_not_leak_into_each_other(server):
    a = ask(server, "Redis 缓存是怎么设计的？").json()["conversation_id"]
    b = ask(server, "Helm 怎么回滚一个 release？").json()["conversation_id"]
    fa = ask(server, "它怎么用？", a).json()
    fb = ask(server, "它怎么用？", b).json()
    assert "Redis" in fa["searched"] and "Helm" not in fa["searched"]
    assert "Helm" in fb["searched"] and "Redis" not in fb["searched"]


def test_concurrent_follow_ups_in_one_conversation(server):
    cid = ask(server, "Redis 缓存是怎么设计的？").json()["conversation_id"]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: ask(server, f"它的第 {i} 个要点是什么？", cid), range(8)))
    assert all(r.status_code == 200 for r in results)
    turns = sorted(r.json()["conversation"]["turn"] for r in results)
    assert turns == list(range(2, 10))
    assert all("Redis" in r.json()["searched"] for r in results)


def test_an_unusable_conversation_store_is_503_with_a_reason(built_index, tmp_path, monkeypatch):
    """In process (TestClient, the same app from the same QA_* variable): what is checked is the
    503 and its reason, not the transport, and a second real server would cost a model load."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.conftest import make_settings

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("QA_CONVERSATIONS_DB", str(blocker / "conversations.sqlite"))
    with TestClient(create_app(make_settings(built_index))) as c:
        r = c.post("/ask", json={"question": "Helm 是什么？"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "conversations_unavailable"
        assert "QA_CONVERSATIONS_DB" in r.json()["error"]["message"]
        s = c.get("/ask/stream", params={"q": "Helm 是什么？"})
        assert s.status_code == 503 and s.json()["error"]["code"] == "conversations_unavailable"
