"""The service layer in-process (ASGI, no sockets): API keys, rate limits, CORS, body limits,
request ids, access logs, metrics, errors, load shedding, readiness and the embedding batcher.

The real-HTTP behaviour (slow uploads, concurrency, live index swaps) is in test_service_http.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_settings

pytestmark = [pytest.mark.model]

KEY, OTHER = "key-alpha", "key-beta"
AUTH = {"Authorization": f"Bearer {KEY}"}
Q = {"question": "Helm 怎么回滚？"}


def _client(index, **kw) -> TestClient:
    from api.main import create_app

    return TestClient(create_app(make_settings(index, **kw)))


@pytest.fixture(scope="module")
def keyed(built_index):
    """One app with keys, JSON logs and generous limits, shared by the module."""
    with _client(built_index, api_keys=f"{KEY}, {OTHER}", log_format="json", rate_limit=10_000) as c:
        yield c


def _error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert "Traceback" not in r.text
    return body["error"]


# ---- API keys ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [("post", "/ask", {"json": Q}), ("get", "/ask", {"params": {"q": "Helm 怎么回滚？"}}),
     ("get", "/ask/stream", {"params": {"q": "Helm 怎么回滚？"}}), ("get", "/stats", {})],
)
def test_question_routes_need_a_key_when_keys_are_set(keyed, method, path, kw):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": "Basic a2V5"},
                    {"Authorization": "Bearer "}):
        r = getattr(keyed, method)(path, headers=headers, **kw)
        err = _error(r, 401, "unauthorized")
        assert "Bearer" in err["message"] and r.headers["www-authenticate"] == "Bearer"
    for key in (KEY, OTHER):
        r = getattr(keyed, method)(path, headers={"Authorization": f"Bearer {key}"}, **kw)
        assert r.status_code == 200, r.text


def test_health_metrics_page_and_docs_stay_open(keyed):
    for path in ("/healthz", "/metrics", "/", "/static/app.js", "/docs", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path
    assert keyed.get("/readyz").status_code in (200, 503)  # open; 503 only while warming


def test_auth_is_checked_before_the_request_is_validated(keyed):
    r = keyed.post("/ask", json={"question": ""})
    _error(r, 401, "unauthorized")  # an anonymous caller learns nothing about the API's rules


def test_metrics_can_require_the_key(built_index):
    with _client(built_index, api_keys=KEY, metrics_require_key=True) as c:
        _error(c.get("/metrics"), 401, "unauthorized")
        assert c.get("/metrics", headers=AUTH).status_code == 200
        assert c.get("/healthz").status_code == 200


def _slack_signed(body: bytes, secret: str) -> dict:
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig, "Content-Type": "application/json"}


def test_bot_webhooks_use_signatures_not_keys_but_have_body_limits(built_index):
    secret = "slack-signing-secret"
    with _client(built_index, api_keys=KEY, slack_signing_secret=secret, max_bot_body_bytes=200_000) as c:
        body = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
        r = c.post("/bots/slack/events", content=body, headers=_slack_signed(body, secret))
        assert r.status_code == 200 and r.json() == {"challenge": "c-123"}  # no API key needed
        big = json.dumps({"type": "url_verification", "challenge": "x" * 100_000}).encode()
        assert len(big) > 65536  # over the API's limit, under the bots' one
        assert c.post("/bots/slack/events", content=big, headers=_slack_signed(big, secret)).status_code == 200
        huge = b"{" + b" " * 300_000 + b"}"
        _error(c.post("/bots/slack/events", content=huge, headers=_slack_signed(huge, secret)), 413, "body_too_large")


# ---- rate limits ---------------------------------------------------------------------------------
def test_rate_limit_per_key_answers_429_with_retry_after(built_index):
    with _client(built_index, api_keys=f"{KEY},{OTHER}", rate_limit=3) as c:
        for _ in range(3):
            assert c.get("/stats", headers=AUTH).status_code == 200
        r = c.get("/stats", headers=AUTH)
        err = _error(r, 429, "rate_limited")
        assert "3 requests per minute" in err["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 20
        # buckets are per key; health checks are never limited
        assert c.get("/stats", headers={"Authorization": f"Bearer {OTHER}"}).status_code == 200
        assert all(c.get("/healthz").status_code == 200 for _ in range(10))
        assert c.get("/metrics").status_code == 200
        assert 'qa_rejected_total{reason="rate_limited"}' not in c.get("/metrics").text  # 429s are counted by status
        assert 'status="429"' in c.get("/metrics").text


def test_rate_limit_per_client_ip_without_keys(built_index):
    with _client(built_index, rate_limit=2, rate_limit_burst=2) as c:
        assert [c.get("/ask", params={"q": "Helm 怎么回滚？"}).status_code for _ in range(3)] == [200, 200, 429]
        assert "ip:testclient" in c.app.state.guard.buckets._buckets


def test_token_bucket_refills_at_the_configured_rate():
    from api.security import TokenBuckets

    b = TokenBuckets(per_minute=60, burst=2)  # one token per second, two at most
    assert b.take("a", now=100.0) == 0 and b.take("a", now=100.0) == 0
    assert b.take("a", now=100.0) == pytest.approx(1.0)
    assert b.take("a", now=100.5) == pytest.approx(0.5)
    assert b.take("a", now=101.0) == 0  # refilled
    assert b.take("b", now=101.0) == 0  # its own bucket
    assert b.take("a", now=1000.0) == 0 and b.take("a", now=1000.0) == 0 and b.take("a", now=1000.0) > 0  # capped


def test_idle_buckets_are_forgotten_when_there_are_too_many():
    from api.security import TokenBuckets

    b = TokenBuckets(per_minute=60, burst=1, max_clients=100)
    for i in range(150):
        b.take(f"ip:{i}", now=float(i))
    assert len(b._buckets) <= 101


# ---- CORS ------------------------------------------------------------------------------------
def _preflight(c, origin):
    return c.options("/ask", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                      "Access-Control-Request-Headers": "authorization,content-type"})


def test_cors_is_closed_by_default(keyed):
    r = _preflight(keyed, "https://evil.example")
    assert "access-control-allow-origin" not in r.headers
    r = keyed.post("/ask", json=Q, headers={**AUTH, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_allows_only_the_configured_origins(built_index):
    with _client(built_index, cors_origins="https://wiki.example.com, https://docs.example.com") as c:
        r = _preflight(c, "https://wiki.example.com")
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://wiki.example.com"
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-origin" not in _preflight(c, "https://evil.example").headers
        r = c.post("/ask", json=Q, headers={"Origin": "https://docs.example.com"})
        assert r.headers["access-control-allow-origin"] == "https://docs.example.com"
        assert "x-request-id" in r.headers["access-control-expose-headers"].lower()


# ---- body limits -------------------------------------------------------------------------------
def test_a_body_over_the_limit_is_413_declared_or_streamed(keyed):
    big = json.dumps({"question": "k8s" + " " * 70_000}).encode()
    err = _error(keyed.post("/ask", content=big, headers={**AUTH, "Content-Type": "application/json"}), 413, "body_too_large")
    assert "65536" in err["message"]

    def chunks():
        for _ in range(100):
            yield b" " * 1000

    _error(keyed.post("/ask", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}), 413, "body_too_large")
    # just under the limit is fine (and then the question's own limit applies)
    ok = json.dumps({"question": "Helm 怎么回滚？", "collection": None}).encode() + b" " * 60_000
    assert keyed.post("/ask", content=ok, headers={**AUTH, "Content-Type": "application/json"}).status_code == 200


def test_question_and_top_k_limits_still_apply(keyed):
    _error(keyed.post("/ask", json={"question": "问" * 600}, headers=AUTH), 422, "question_too_long")
    _error(keyed.post("/ask", json={"question": "k8s", "top_k": 51}, headers=AUTH), 422, "invalid_request")


def test_unknown_or_repeated_query_parameters_are_refused(keyed):
    err = _error(keyed.get("/ask", params={"q": "k8s", "topk": 3}, headers=AUTH), 422, "invalid_request")
    assert "'topk'" in err["message"] and "top_k" in err["message"]
    err = _error(keyed.get("/ask?q=k8s&q=helm", headers=AUTH), 422, "invalid_request")
    assert "more than once" in err["message"]


# ---- request ids and logs -------------------------------------------------------------------------
def test_request_id_is_echoed_or_generated_on_every_response(keyed):
    r = keyed.post("/ask", json=Q, headers={**AUTH, "X-Request-ID": "req-42.a:b"})
    assert r.headers["x-request-id"] == "req-42.a:b"
    for resp in (keyed.get("/healthz"), keyed.get("/nope"), keyed.post("/ask", json=Q),
                 keyed.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}),
                 keyed.get("/healthz", headers={"X-Request-ID": "x" * 500})):
        rid = resp.headers["x-request-id"]
        assert len(rid) == 32 and int(rid, 16) >= 0  # generated


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        from api.middleware import JsonFormatter, RequestIdFilter

        RequestIdFilter().filter(record)
        self.lines.append(JsonFormatter().format(record))


def test_access_log_is_json_with_request_id_and_never_the_key(keyed):
    handler = _Records()
    log = logging.getLogger("qa.access")
    log.addHandler(handler)
    try:
        keyed.post("/ask", json=Q, headers={**AUTH, "X-Request-ID": "trace-me"})
        keyed.get("/stats", headers={"Authorization": "Bearer wrong-key"})
    finally:
        log.removeHandler(handler)
    entries = [json.loads(line) for line in handler.lines]
    first = next(e for e in entries if e["request_id"] == "trace-me")
    assert first["method"] == "POST" and first["route"] == "/ask" and first["status"] == 200
    assert first["duration_ms"] > 0 and first["client_id"].startswith("key:")
    assert any(e["status"] == 401 and e["path"] == "/stats" for e in entries)
    assert not any(KEY in line or "wrong-key" in line for line in handler.lines)


def test_logging_setup_is_idempotent_and_follows_the_format(built_index):
    from api.middleware import HANDLER_NAME, JsonFormatter, configure_logging

    for fmt in ("json", "text", "json"):
        configure_logging(make_settings(built_index, log_format=fmt))
    for name in ("api", "qa"):
        ours = [h for h in logging.getLogger(name).handlers if h.get_name() == HANDLER_NAME]
        assert len(ours) == 1 and isinstance(ours[0].formatter, JsonFormatter)
    assert logging.getLogger("uvicorn.access").disabled  # ours replaces it
    configure_logging(make_settings(built_index))


# ---- metrics --------------------------------------------------------------------------------------
def test_metrics_count_requests_latency_and_describe_the_index(keyed):
    keyed.post("/ask", json=Q, headers=AUTH)
    keyed.get("/static/nope.js")
    keyed.get("/definitely/not/here")
    r = keyed.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'qa_http_requests_total{method="POST",route="/ask",status="200"}' in text
    assert 'qa_http_requests_total{method="GET",route="/static/{name}",status="404"}' in text
    assert 'route="unmatched",status="404"' in text and "/definitely/not/here" not in text
    assert 'qa_http_request_duration_seconds_bucket{le="0.05",method="POST",route="/ask"}' in text
    for name in ("qa_index_generation 1.0", "qa_index_passages ", "qa_index_documents ", "qa_index_bytes ",
                 "qa_ready 1.0", "qa_embed_batch_size_count", 'qa_index_info{generation="gen-000001"'):
        assert name in text, name


# ---- errors, load shedding, readiness -----------------------------------------------------------------
def test_an_unexpected_error_is_a_500_in_the_error_shape_without_details(built_index):
    with _client(built_index) as c:
        bot = c.app.state.holder.get()

        def boom(*a, **k):
            raise RuntimeError("secret internals /etc/passwd")

        original = bot.ask
        bot.ask = boom
        try:
            r = c.post("/ask", json=Q)
        finally:
            bot.ask = original
        err = _error(r, 500, "internal_error")
        assert "secret" not in r.text and "passwd" not in r.text and err["message"]
        assert r.headers["x-request-id"]
        assert c.post("/ask", json=Q).status_code == 200  # and the server goes on


def test_too_many_pending_questions_get_503_with_retry_after(built_index):
    with _client(built_index, max_pending=4) as c:
        holder = c.app.state.holder
        holder.get()
        holder.pending = 4  # as if four questions were being answered
        try:
            r = c.post("/ask", json=Q)
        finally:
            holder.pending = 0
        _error(r, 503, "busy")
        assert r.headers["retry-after"] == "1"
        assert c.get("/healthz").status_code == 200
        assert c.post("/ask", json=Q).status_code == 200


def test_readyz_is_503_while_warming_then_200(built_index):
    from api.main import create_app

    app = create_app(make_settings(built_index))
    c = TestClient(app)  # no lifespan: nothing warmed yet
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["ready"] is False and "warming" in r.json()["reason"]
    assert c.get("/healthz").status_code == 200
    deadline = time.time() + 60
    while time.time() < deadline and c.get("/readyz").status_code != 200:
        time.sleep(0.05)
    body = c.get("/readyz").json()
    assert body["ready"] is True and body["generation"] == "gen-000001"
    app.state.holder.close()


def test_readiness_probe_does_not_wait_for_the_model_load(built_index):
    """/readyz runs on the event loop and calls warm_in_background(); while the model loads, get()
    holds the loading lock for seconds. The probe must not wait for that lock: it used to, and froze
    every request (health checks included) for the whole warm-up."""
    from api.runtime import AssistantHolder

    holder = AssistantHolder(make_settings(built_index))
    loading, release = threading.Event(), threading.Event()

    def slow_load():  # what get() does during Assistant.open: hold the lock for a while
        with holder._lock:
            loading.set()
            release.wait(10)

    t = threading.Thread(target=slow_load)
    t.start()
    try:
        loading.wait(5)
        # it must not wait for the lock the loader holds: the call returns while the load goes on
        caller = threading.Thread(target=holder.warm_in_background, daemon=True)
        caller.start()
        caller.join(5)
        assert not caller.is_alive() and not release.is_set()
        assert holder.warming and not holder.ready
    finally:
        release.set()
        t.join()
    deadline = time.time() + 60
    while time.time() < deadline and not holder.ready:
        time.sleep(0.05)
    assert holder.ready and holder.loaded is not None
    holder.close()


def test_readyz_explains_a_missing_index(tmp_path):
    with _client(tmp_path / "nothing-here") as c:
        deadline = time.time() + 10
        while time.time() < deadline:
            body = c.get("/readyz").json()
            if "qa ingest" in (body.get("reason") or ""):
                break
            time.sleep(0.05)
        assert body["ready"] is False and "qa ingest" in body["reason"]
        _error(c.post("/ask", json=Q), 503, "index_missing")


# ---- the embedding batcher ------------------------------------------------------------------------
class _FakeEmbedder:
    name, dim = "fake", 4

    def __init__(self, delay=0.05, fail_on=None):
        self.batches: list[list[str]] = []
        self.delay, self.fail_on = delay, fail_on

    def encode_queries(self, texts):
        self.batches.append(list(texts))
        if self.fail_on in texts:
            raise ValueError("model exploded")
        time.sleep(self.delay)
        return np.array([[len(t), 1, 2, 3] for t in texts], dtype=np.float32)


def test_concurrent_queries_are_embedded_together_and_cached():
    from api.batching import BatchingEmbedder

    inner = _FakeEmbedder()
    emb = BatchingEmbedder(inner, max_batch=8)
    try:
        assert emb.encode_query("alone")[0] == 5 and inner.batches == [["alone"]]  # a lone query never waits
        out: dict[str, np.ndarray] = {}
        barrier = threading.Barrier(16)

        def ask(i):
            barrier.wait()
            out[f"q{i}"] = emb.encode_query("x" * i)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(1, 17)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(out[f"q{i}"][0] == i for i in range(1, 17))  # every caller gets its own vector
        sizes = [len(b) for b in inner.batches[1:]]
        assert sum(sizes) == 16 and max(sizes) > 1 and max(sizes) <= 8 and len(sizes) < 16
        n = len(inner.batches)
        assert emb.encode_query("x" * 3)[0] == 3 and len(inner.batches) == n  # cached
        assert emb.dim == 4 and emb.name == "fake"  # the rest of the interface is the inner one's
    finally:
        emb.close()


def test_a_failed_batch_fails_its_callers_and_the_batcher_lives_on():
    from api.batching import BatchingEmbedder

    emb = BatchingEmbedder(_FakeEmbedder(delay=0, fail_on="bad"), max_batch=4)
    try:
        with pytest.raises(ValueError, match="exploded"):
            emb.encode_query("bad")
        assert emb.encode_query("good")[0] == 4
    finally:
        emb.close()


def test_batched_vectors_match_unbatched_ones(assistant):
    """The real model: a question embedded in a batch gets (numerically) the same vector."""
    from api.batching import BatchingEmbedder

    plain = assistant.embedder.inner if hasattr(assistant.embedder, "inner") else assistant.embedder
    qs = ["k8s 和 Docker 是什么关系？", "Helm 怎么回滚？", "如何查看 Pod 日志"]
    emb = BatchingEmbedder(plain, max_batch=8)
    try:
        batched = [f.result() for f in [emb.submit(q) for q in qs]]
    finally:
        emb.close()
    for q, v in zip(qs, batched):
        assert np.allclose(v, plain.encode_queries([q])[0], atol=1e-4)
