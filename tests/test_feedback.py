"""POST /feedback and GET /admin/gaps over real HTTP (uvicorn on 127.0.0.1, real index and model).

One key-protected, rate-limited server; its question log lives in a temporary QA_STATE_DIR
that the tests read directly with sqlite3 to see what was stored (and what was not).
"""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest

from tests.conftest import start_server, stop_server

pytestmark = [pytest.mark.model, pytest.mark.server]
KEY, OTHER = "fb-key-1", "fb-key-2"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def srv(built_index, state):
    s = start_server(built_index, {
        "QA_API_KEYS": f"{KEY},{OTHER}", "QA_RATE_LIMIT": "12", "QA_RATE_LIMIT_BURST": "20", "QA_STATE_DIR": str(state),
    }, ready_path="/readyz")
    yield s
    stop_server(s)


def db_rows(state, sql: str, *args):
    with sqlite3.connect(state / "questions.sqlite") as c:
        return c.execute(sql, args).fetchall()


def wait_rows(state, answer_id: str, timeout: float = 10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = db_rows(state, "SELECT channel, question, status, sources FROM questions WHERE answer_id=?", answer_id)
        if rows:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"{answer_id} was never logged")


def ask(srv, q: str, key: str = KEY) -> dict:
    r = httpx.post(srv.url + "/ask", json={"question": q}, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def vote(srv, body: dict, key: str | None = KEY):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(srv.url + "/feedback", json=body, headers=headers, timeout=20)


def test_answers_carry_an_id_and_are_logged_without_secrets(srv, state):
    a = ask(srv, "Helm 怎么回滚？")
    assert a["answer_id"].startswith("ans_")
    channel, question, status, sources = wait_rows(state, a["answer_id"])[0]
    assert (channel, question, status) == ("http", "Helm 怎么回滚？", a["status"])
    assert json.loads(sources)[0]["path"] == a["citations"][0]["path"]
    # the stream's answer too, logged as the web page's channel
    with httpx.stream("GET", srv.url + "/ask/stream", params={"q": "Redis 缓存默认多久过期？"}, headers=AUTH, timeout=60) as r:
        body = r.read().decode()
    answer = json.loads(body.split("event: answer\ndata: ", 1)[1].split("\n", 1)[0])
    assert wait_rows(state, answer["answer_id"])[0][0] == "web"
    dump = (state / "questions.sqlite").read_bytes()
    assert KEY.encode() not in dump and OTHER.encode() not in dump and b"127.0.0.1" not in dump
    assert answer["citations"][0]["text"][:40].encode() not in dump  # where a passage is, not what it says


def test_vote_is_idempotent_per_voter_and_changeable(srv, state):
    a = ask(srv, "k8s 和 Docker 是什么关系？")
    first = vote(srv, {"answer_id": a["answer_id"], "vote": "down", "comment": "太笼统"})
    assert first.status_code == 200 and first.json() == {"answer_id": a["answer_id"], "vote": "down", "changed": True}
    again = vote(srv, {"answer_id": a["answer_id"], "vote": "down"})
    assert again.status_code == 200 and again.json()["changed"] is False
    other = vote(srv, {"answer_id": a["answer_id"], "vote": "up"}, key=OTHER)  # another voter
    assert other.json()["changed"] is True
    flip = vote(srv, {"answer_id": a["answer_id"], "vote": "up"})
    assert flip.json()["changed"] is True
    rows = db_rows(state, "SELECT voter, vote, comment FROM votes WHERE answer_id=? ORDER BY vote", a["answer_id"])
    assert [r[1] for r in rows] == ["up", "up"] and len({r[0] for r in rows}) == 2
    assert "太笼统" in [r[2] for r in rows]
    assert all(KEY not in r[0] and "key:" not in r[0] for r in rows)


def test_bad_votes_are_clear_4xx(srv):
    a = ask(srv, "Helm 怎么回滚？")
    unknown = vote(srv, {"answer_id": "ans_00000000000000000000", "vote": "up"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_answer"
    for body in ({"answer_id": a["answer_id"], "vote": "meh"}, {"answer_id": "../etc", "vote": "up"},
                 {"answer_id": a["answer_id"]}, {"answer_id": a["answer_id"], "vote": "up", "extra": 1},
                 {"answer_id": a["answer_id"], "vote": "up", "comment": "x" * 1001}):
        r = vote(srv, body)
        assert r.status_code == 422 and "error" in r.json(), body
    assert vote(srv, {"answer_id": a["answer_id"], "vote": "up"}, key=None).status_code == 401
    assert vote(srv, {"answer_id": a["answer_id"], "vote": "up"}, key="wrong").status_code == 401


def test_votes_are_rate_limited_like_ask(srv):
    a = ask(srv, "集群升级前要做什么？", key=OTHER)
    codes = [vote(srv, {"answer_id": a["answer_id"], "vote": "up"}, key=OTHER) for _ in range(30)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited and int(limited[0].headers["Retry-After"]) >= 1
    assert all(r.status_code in (200, 429) for r in codes)


def test_admin_page_needs_a_key_and_escapes_questions(srv, state):
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> Kafka 消息积压怎么处理？'
    a = ask(srv, hostile)
    vote(srv, {"answer_id": a["answer_id"], "vote": "down", "comment": "<b>missing</b>"})
    r = httpx.get(srv.url + "/admin/gaps", timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic ")
    assert httpx.get(srv.url + "/admin/gaps", auth=("writer", "wrong"), timeout=30).status_code == 401
    page = httpx.get(srv.url + "/admin/gaps", auth=("writer", KEY), timeout=60)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"] and "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text and "&lt;b&gt;missing&lt;/b&gt;" in page.text
    js = httpx.get(srv.url + "/admin/gaps", params={"format": "json", "since": "1d"}, headers=AUTH, timeout=60)
    assert js.status_code == 200 and js.json()["questions"] >= 1
    assert any(d["question"] == hostile for d in js.json()["down_voted"])
    bad = httpx.get(srv.url + "/admin/gaps", params={"since": "soon"}, headers=AUTH, timeout=30)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_since"


def test_log_off_stores_nothing_and_refuses_votes(built_index, tmp_path, monkeypatch):
    """In process (TestClient, the same app from the same QA_* variables): what is checked is
    the setting, not the transport, and a second real server would cost a model load."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.conftest import make_settings

    for name, value in {"QA_API_KEYS": KEY, "QA_QUESTION_LOG": "off", "QA_STATE_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    with TestClient(create_app(make_settings(built_index))) as c:
        r = c.post("/ask", json={"question": "Helm 怎么回滚？"}, headers=AUTH)
        assert r.status_code == 200, r.text
        a = r.json()
        assert a["answer_id"].startswith("ans_")  # answers are unchanged
        r = c.post("/feedback", json={"answer_id": a["answer_id"], "vote": "up"}, headers=AUTH)
        assert r.status_code == 404 and "QA_QUESTION_LOG=off" in r.json()["error"]["message"]
        page = c.get("/admin/gaps", headers=AUTH)
        assert page.status_code == 404 and page.json()["error"]["code"] == "question_log_off"
    assert not (tmp_path / "questions.sqlite").exists()
