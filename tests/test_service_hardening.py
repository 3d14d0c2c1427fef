"""What an outside probe of the service found (issue 15), each checked where it happens.

Real servers over raw sockets for what only a server sees (header size and header-read time,
proxy headers, the text access log); the ASGI app in-process for the rest (key guessing,
strict types, methods, redirects, hostile article metadata).
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import ROOT, free_port, make_settings

KEY = "hardening-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


# --------------------------------------------------------------------------- real servers


class Proc:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"


def launch(cmd: list[str], port: int, log: Path, env: dict, ready_path: str = "/readyz") -> Proc:
    out = open(log, "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    srv = Proc(proc, port, log)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')}")
        try:
            # ready: the model is loaded, so rate-limited requests below follow each other quickly
            if httpx.get(srv.url + ready_path, timeout=1).status_code == 200:
                return srv
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start in time")


def stop(srv: Proc) -> None:
    srv.proc.terminate()
    try:
        srv.proc.wait(10)
    except subprocess.TimeoutExpired:
        srv.proc.kill()


# a bucket of 2 refilled once a minute: three requests in a row are 200, 200, 429
LIMITS = {"QA_MAX_HEADER_BYTES": "4096", "QA_HEADER_TIMEOUT_S": "2", "QA_RATE_LIMIT": "1", "QA_RATE_LIMIT_BURST": "2"}


@pytest.fixture(scope="module")
def served(built_index, tmp_path_factory):
    """`qa serve` as documented, with its defaults (trusts no proxy), small limits to probe."""
    port = free_port()
    log = tmp_path_factory.mktemp("served") / "server.log"
    srv = launch([sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                  "--index", str(built_index)], port, log, LIMITS)
    yield srv
    stop(srv)


@pytest.fixture(scope="module")
def behind_proxy(built_index, tmp_path_factory):
    """uvicorn directly with the service's protocol, told to trust the local proxy."""
    port = free_port()
    log = tmp_path_factory.mktemp("proxied") / "server.log"
    srv = launch([sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--http", "api.server:HttpProtocol",
                  "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                 port, log, {**LIMITS, "QA_INDEX_DIR": str(built_index), "QA_TRUSTED_PROXIES": "127.0.0.1"})
    yield srv
    stop(srv)


def _read_response(sock: socket.socket, timeout: float = 20) -> bytes:
    """Everything the server sends until it closes (or stops sending for ``timeout``)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and b"connection: close" not in data.lower():
                break
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def _status(raw: bytes) -> int | None:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else None


def test_oversized_headers_get_431_and_the_connection_closes(served):
    with socket.create_connection(("127.0.0.1", served.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 6000 + b"\r\n\r\n")
        raw = _read_response(s)
    assert _status(raw) == 431, raw[:200]
    assert b'"headers_too_large"' in raw and b"connection: close" in raw.lower()
    # headers within the limit are served as always
    assert httpx.get(served.url + "/healthz", headers={"X-Ok": "a" * 2000}).status_code == 200


def test_a_huge_header_is_cut_off_before_it_is_all_sent(served):
    """16 MB of headers used to be buffered whole; now the server stops reading past the limit."""
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", served.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            while sent < 4_000_000:
                s.sendall(b"a" * 16384)
                sent += 16384
                if select.select([s], [], [], 0)[0]:  # the server answered (or closed) already
                    answer = _read_response(s, 5)
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert sent < 4_000_000, "the server kept reading a 4 MB header"
    assert answer == b"" or _status(answer) == 431


def test_headers_sent_slowly_get_408(served):
    """A client trickling one header line at a time, forever, is cut off after QA_HEADER_TIMEOUT_S."""
    with socket.create_connection(("127.0.0.1", served.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        raw = b""
        for i in range(60):  # up to ~30 s of trickling; the limit is 2 s
            if select.select([s], [], [], 0.5)[0]:
                raw = _read_response(s, 5)
                break
            try:
                s.sendall(f"X-Slow-{i}: 1\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                break
    assert _status(raw) == 408, raw[:200]
    assert b'"header_timeout"' in raw


def test_a_connection_that_sends_nothing_is_closed(served):
    with socket.create_connection(("127.0.0.1", served.port)) as s:
        raw = _read_response(s, 30)
    assert _status(raw) == 408, raw[:200]


def test_keep_alive_requests_are_not_cut_by_the_header_timer(served):
    with httpx.Client() as c:  # one connection, several requests, spread over more than the 2 s limit
        for i in range(3):
            if i:
                time.sleep(1.2)  # the third request comes 2.4 s after the first
            assert c.get(served.url + "/healthz").status_code == 200


def test_head_and_options_over_http(served):
    with httpx.Client() as c:  # one kept-alive connection: a HEAD must leave it usable
        head = c.head(served.url + "/healthz")
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
        opts = c.options(served.url + "/ask")
        assert opts.status_code == 204 and "GET" in opts.headers["allow"] and "POST" in opts.headers["allow"]
        assert c.get(served.url + "/healthz").json() == {"status": "ok"}


def test_forwarded_for_from_localhost_is_ignored_by_default(served):
    """A forged X-Forwarded-For per request must not give a client a new rate-limit bucket."""
    codes = [httpx.get(served.url + "/stats", headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=60).status_code
             for i in range(1, 4)]
    assert codes == [200, 200, 429], codes


def test_forwarded_for_is_used_from_a_trusted_proxy(behind_proxy):
    codes = [httpx.get(behind_proxy.url + "/stats", headers={"X-Forwarded-For": f"198.51.100.{i}"}, timeout=60).status_code
             for i in range(1, 6)]
    assert codes == [200] * 5, codes  # a bucket per forwarded client
    same = [httpx.get(behind_proxy.url + "/stats", headers={"X-Forwarded-For": "198.51.100.77"}, timeout=60).status_code
            for _ in range(3)]
    assert same == [200, 200, 429], same


def test_uvicorns_default_trust_of_localhost_is_replaced():
    """With --http api.server:HttpProtocol, uvicorn's --forwarded-allow-ips (127.0.0.1 by default)
    gives way to QA_TRUSTED_PROXIES."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from api.server import with_proxy_trust
    from qa.config import Settings

    async def app(scope, receive, send):  # pragma: no cover - never called
        pass

    assert with_proxy_trust(ProxyHeadersMiddleware(app, "127.0.0.1"), Settings()) is app
    trusted = with_proxy_trust(ProxyHeadersMiddleware(app, "*"), Settings(trusted_proxies="10.0.0.1"))
    assert isinstance(trusted, ProxyHeadersMiddleware) and trusted.app is app
    assert "10.0.0.1" in trusted.trusted_hosts and "127.0.0.1" not in trusted.trusted_hosts


def test_a_newline_in_the_path_cannot_forge_an_access_log_line(served):
    forged = b'203.0.113.9 - "GET /admin" 200 1.0ms 10B'
    with socket.create_connection(("127.0.0.1", served.port)) as s:
        s.sendall(b"GET /nope%0a" + forged.replace(b" ", b"%20").replace(b'"', b"%22") + b"%1b[31m HTTP/1.1\r\n"
                  b"Host: x\r\nConnection: close\r\n\r\n")
        assert _status(_read_response(s)) == 404
    deadline = time.time() + 10
    while b"/nope" not in served.log.read_bytes() and time.time() < deadline:
        time.sleep(0.1)
    lines = served.log.read_bytes().splitlines()
    mine = [line for line in lines if b"/nope" in line]
    assert len(mine) == 1 and b"\\n203.0.113.9" in mine[0] and b"\\x1b[31m" in mine[0], mine
    assert not any(line.startswith(forged) for line in lines)
    assert not any(b"\x1b" in line for line in lines)


# --------------------------------------------------------------------------- in-process


@pytest.fixture(scope="module")
def app_client(built_index):
    from api.main import create_app

    with TestClient(create_app(make_settings(built_index, api_keys=KEY))) as c:
        yield c


def _code(r) -> str:
    return r.json()["error"]["code"]


def test_wrong_keys_are_throttled_per_address(built_index):
    from api.main import create_app

    app = create_app(make_settings(built_index, api_keys=KEY, auth_failure_limit=5))
    with TestClient(app, client=("198.51.100.1", 1234)) as guesser, \
            TestClient(app, client=("198.51.100.2", 1234)) as other:
        for _ in range(20):  # no key at all is no guess: the chat page starts that way
            assert guesser.get("/stats").status_code == 401
        assert [guesser.get("/stats", headers={"Authorization": f"Bearer guess-{i}"}).status_code
                for i in range(5)] == [401] * 5
        r = guesser.get("/stats", headers={"Authorization": "Bearer guess-6"})
        assert r.status_code == 429 and _code(r) == "too_many_auth_failures"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # the right key does not help that address while it is blocked (or guessing could go on)...
        assert guesser.get("/stats", headers=AUTH).status_code == 429
        # ...and other addresses are not affected
        assert other.get("/stats", headers=AUTH).status_code == 200
        assert other.get("/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_failure_window_reopens_after_the_window():
    from api.security import FailureWindow

    w = FailureWindow(limit=3, window_s=60)
    for t in (0, 1, 2):
        assert w.wait("a", now=t) == 0
        w.failed("a", now=t)
    assert w.wait("a", now=3) == pytest.approx(57)
    assert w.wait("a", now=60.5) == 0  # the first failure left the window: one more try
    w.failed("a", now=60.5)
    assert w.wait("a", now=60.7) > 0


@pytest.mark.parametrize("top_k", [True, False, "3", [3], None, 2.5])
def test_top_k_must_be_a_json_integer(app_client, top_k):
    r = app_client.post("/ask", json={"question": "Helm 怎么回滚？", "top_k": top_k}, headers=AUTH)
    assert r.status_code == 422 and _code(r) == "invalid_request" and "top_k" in r.json()["error"]["message"]
    # 2.0 is an integer to JSON Schema (and to the OpenAPI fuzzer): accepted, as 2
    ok = app_client.post("/ask", json={"question": "Helm 怎么回滚？", "top_k": 2.0}, headers=AUTH)
    assert ok.status_code == 200 and len(ok.json()["citations"]) <= 2


@pytest.mark.parametrize("top_k", ["true", "3.0", " 3", "３"])
def test_top_k_query_parameter_is_digits(app_client, top_k):
    r = app_client.get("/ask", params={"q": "Helm 怎么回滚？", "top_k": top_k}, headers=AUTH)
    assert r.status_code == 422 and "top_k" in r.json()["error"]["message"]
    assert app_client.get("/ask", params={"q": "Helm 怎么回滚？", "top_k": "2"}, headers=AUTH).status_code == 200


def test_options_and_405_list_every_method_of_the_path(app_client):
    r = app_client.options("/ask")
    assert r.status_code == 204 and r.content == b""
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "HEAD", "POST", "OPTIONS"}
    r = app_client.delete("/ask")
    assert r.status_code == 405 and _code(r) == "method_not_allowed"
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "HEAD", "POST", "OPTIONS"}
    assert {m.strip() for m in app_client.options("/healthz").headers["allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}


@pytest.mark.parametrize(("path", "headers"), [("/healthz", {}), ("/", {}), ("/static/app.js", {}),
                                               ("/stats", AUTH), ("/ask?q=Helm", AUTH)])
def test_head_answers_like_get_without_a_body(app_client, path, headers):
    get = app_client.get(path, headers=headers)
    head = app_client.head(path, headers=headers)
    assert get.status_code == head.status_code == 200
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]
    assert app_client.head("/stats").status_code == 401  # HEAD is no way around the key


def test_no_redirect_is_built_from_the_host_header(app_client):
    for path in ("/static/app.js/", "/healthz/", "/ask/"):
        r = app_client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
        assert r.status_code == 404 and "location" not in r.headers, (path, r.headers)


def test_oversized_headers_are_431_whatever_server_runs_the_app(app_client):
    r = app_client.get("/healthz", headers={"X-Big": "a" * 40000})
    assert r.status_code == 431 and _code(r) == "headers_too_large"


HOSTILE = """---
title: "<img src=x onerror=alert(1)>猫头鹰值班手册"
url: "javascript:alert(1)"
---
# 值班

猫头鹰值班机器人每天凌晨三点检查证书，并把结果发到值班群。
"""
SAFE = """---
title: 证书轮换
url: https://wiki.example.com/cert
---
# 轮换

证书轮换由猫头鹰值班机器人在每月一号执行。
"""


@pytest.mark.model
def test_citation_urls_are_http_only_and_titles_stay_text(tmp_path):
    from api.main import create_app
    from qa.ingest import ingest

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "hostile.md").write_text(HOSTILE, encoding="utf-8")
    (corpus / "safe.md").write_text(SAFE, encoding="utf-8")
    settings = make_settings(tmp_path / "index")
    assert ingest(corpus, settings).published
    with TestClient(create_app(settings)) as c:
        body = c.post("/ask", json={"question": "猫头鹰值班机器人几点检查证书？", "top_k": 5}).json()
        schema = c.get("/openapi.json").json()["components"]["schemas"]
    by_path = {cit["path"].rsplit("/", 1)[-1]: cit for cit in body["citations"]}
    assert by_path["hostile.md"]["url"] is None
    assert by_path["hostile.md"]["title"] == "<img src=x onerror=alert(1)>猫头鹰值班手册"  # text, returned as is
    assert by_path["safe.md"]["url"] == "https://wiki.example.com/cert"
    citation = schema["Citation"]["properties"]
    assert "plain text" in citation["title"]["description"] and "http(s)" in citation["url"]["description"]
    assert "plain text" in schema["Answer"]["description"]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JavaScript:alert(1)", " javascript:x", "data:text/html,x",
                                 "vbscript:x", "//evil.example/x", "/relative/path", "https://", "http://a\nb"])
def test_only_absolute_http_urls_survive(url):
    from qa.responses import Citation

    c = Citation(n=1, title="t", path="p", url=url, heading="", text="x", start=0, end=1, line_start=1,
                 line_end=1, scores={"fused": 1.0})
    assert c.url is None
