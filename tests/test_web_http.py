"""The chat page over HTTP (no browser): headers, static files, and the /ask/stream SSE contract."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.model, pytest.mark.server]

STATIC = Path(__file__).resolve().parents[1] / "api" / "static"


def sse_events(text: str) -> list[tuple[str, dict]]:
    """(event, data) pairs from a server-sent-events body."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "data" in fields:
            events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


def test_page_is_served_with_a_strict_csp_and_nosniff(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/static/app.js">' in r.text


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("app.js", "text/javascript"), ("api.js", "text/javascript"), ("app.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
def test_static_files_carry_their_type_and_nosniff(server, name, media_type):
    r = httpx.get(f"{server.url}/static/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media_type)
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/..%2F..%2Fpyproject.toml", "/static/%2e%2e%2fweb.py"])
def test_only_the_static_files_are_served(server, path):
    r = httpx.get(server.url + path)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.script_bodies: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.script_bodies.append(data)


def test_page_has_no_inline_code_and_the_scripts_never_parse_html():
    """The CSP would block inline code anyway; this keeps the page from depending on it."""
    parser = _Tags()
    parser.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    assert not parser.script_bodies
    assert all(attrs.get("src", "").startswith("/static/") for tag, attrs in parser.tags if tag == "script")
    assert not [tag for tag, _ in parser.tags if tag == "style"]
    assert not [(tag, a) for tag, attrs in parser.tags for a in attrs if a == "style" or a.startswith("on")]
    for js in STATIC.glob("*.js"):
        code = js.read_text(encoding="utf-8")
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", code), js.name


def test_stream_sends_progress_then_the_same_answer_as_ask(server):
    q = "Helm 怎么回滚？"
    r = httpx.get(server.url + "/ask/stream", params={"q": q, "top_k": 3}, timeout=60)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert [e for e, _ in events] == ["progress", "progress", "answer"]
    assert events[0][1] == {"stage": "searching"}
    assert events[1][1]["stage"] == "composing" and events[1][1]["passages"] == 3
    streamed = events[2][1]
    plain = httpx.get(server.url + "/ask", params={"q": q, "top_k": 3}, timeout=60).json()
    for key in ("question", "answer", "abstained", "confidence", "citations", "index"):
        assert streamed[key] == plain[key], key
    assert "helm rollback" in streamed["answer"]


@pytest.mark.parametrize(
    ("params", "code"),
    [({"q": "   "}, "invalid_question"), ({"q": "问" * 600}, "question_too_long"), ({}, "invalid_request")],
)
def test_stream_rejects_bad_questions_with_a_json_error(server, params, code):
    r = httpx.get(server.url + "/ask/stream", params=params)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == code


def test_stream_requires_an_api_key_when_keys_are_configured(built_index, monkeypatch):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from qa.config import Settings

    monkeypatch.setenv("QA_API_KEYS", "first-key, second-key")
    client = TestClient(create_app(Settings(index_dir=built_index)))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "second-key"}):
        r = client.get("/ask/stream", params={"q": "Helm 怎么回滚？"}, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    r = client.get("/ask/stream", params={"q": "Helm 怎么回滚？"}, headers={"Authorization": "Bearer second-key"})
    assert r.status_code == 200
    assert sse_events(r.text)[-1][0] == "answer"
    # the page itself stays public: it is what asks for the key
    assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200
