"""The outermost layer of every request: request id, body limits, access log, metrics, last-resort 500.

A plain ASGI middleware (no BaseHTTPMiddleware: it adds a task and a copy per request):

* ``X-Request-ID``: echoed when the client sends a sane one (``[A-Za-z0-9._:-]{1,128}``),
  generated otherwise; on every response, in every log line written while serving the request
  (a context variable, carried into worker threads), and in the access log;
* body limits: a declared ``Content-Length`` above ``QA_MAX_BODY_BYTES`` (``QA_MAX_BOT_BODY_BYTES``
  under ``/bots/``) is refused with 413 before the app runs; a chunked body is counted while it is
  read and refused the moment it passes the limit; a body that has not fully arrived within
  ``QA_BODY_TIMEOUT_S`` gets 408. A slow or huge upload therefore costs one idle coroutine,
  never a worker thread or unbounded memory;
* request heads over ``QA_MAX_HEADER_BYTES`` (request line and headers) get 431, whatever server
  runs the app (``api.server.HttpProtocol`` refuses them before they are buffered);
* ``HEAD`` is answered like ``GET`` without the body (FastAPI's routes would say 405);
* the access log (``qa.access``): one line per request, text or JSON (``QA_LOG_FORMAT=json``);
  in text logs control characters are escaped (:func:`qa.safetext.printable`), so a ``%0a`` in a
  path cannot write a line of its own;
* Prometheus counters and the latency histogram by route template (:mod:`api.metrics`);
* an exception that escaped every handler becomes the standard 500 error body, never a trace.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import sys
import time
import uuid

from api.errors import APIError
from qa.safetext import printable

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
RID_RE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
access_log = logging.getLogger("qa.access")
log = logging.getLogger("api")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, and the access fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
        }
        out.update(getattr(record, "access", None) or {})
        if record.exc_info:  # server-side only: clients never see traces
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The text format, with control characters in the message escaped (one record, one line;
    a traceback that follows the message is the server's own and stays as it is)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
HANDLER_NAME = "qa-service"


def configure_logging(settings) -> None:
    """Send the app's and the access log's records to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter(TEXT_FORMAT))
    level = logging.getLevelName(settings.log_level.upper())
    level = level if isinstance(level, int) else logging.INFO
    if "log_level" not in settings.model_fields_set:
        # not chosen with QA_LOG_LEVEL: follow uvicorn's --log-level (e.g. `--log-level warning`
        # silences the access log, as it silenced uvicorn's own)
        level = logging.getLogger("uvicorn.error").level or level
    for name in ("api", "qa"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if h.get_name() == HANDLER_NAME:
                lg.removeHandler(h)
        lg.addHandler(handler)
        lg.setLevel(level)
        # propagate stays on: uvicorn gives the root logger no handler, and log capture in
        # tests (or a deployment's own root handler) still sees the records
    # ours replaces uvicorn's access log (which has no request id); its error log keeps going,
    # as JSON too when asked
    if settings.access_log:
        logging.getLogger("uvicorn.access").disabled = True
    if settings.log_format == "json":
        for h in logging.getLogger("uvicorn.error").handlers + logging.getLogger("uvicorn").handlers:
            h.setFormatter(JsonFormatter())


def _json_error(status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None):
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return {"type": "http.response.start", "status": status, "headers": hdrs + (headers or [])}, body


class ServiceMiddleware:
    def __init__(self, app, settings, metrics=None):
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.access = settings.access_log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        rid = None
        length = None
        chunked = False
        head_bytes = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        for k, v in scope["headers"]:
            head_bytes += len(k) + len(v) + 4
            if k == b"transfer-encoding":
                chunked = b"chunked" in v.lower()
            elif k == b"x-request-id":
                cand = v.decode("latin-1")
                rid = cand if RID_RE.fullmatch(cand) else None
            elif k == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    length = -1
        rid = rid or uuid.uuid4().hex
        token = REQUEST_ID.set(rid)
        rid_header = (b"x-request-id", rid.encode())
        path = scope.get("path", "")
        limit = self.settings.max_bot_body_bytes if path.startswith("/bots/") else self.settings.max_body_bytes
        state = {"status": 500, "bytes": 0, "started": False}
        head_only = scope.get("method") == "HEAD"
        # HEAD: route and answer it as GET, send the headers only
        app_scope = {**scope, "method": "GET"} if head_only else scope

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                message = {**message, "headers": [*message.get("headers", []), rid_header]}
            elif message["type"] == "http.response.body":
                if head_only:
                    message = {"type": "http.response.body", "body": b"", "more_body": message.get("more_body", False)}
                state["bytes"] += len(message.get("body", b""))
            await send(message)

        received = 0
        body_done = not (chunked or (length or 0) > 0)  # nothing to wait for: no timeout applies
        deadline = t0 + self.settings.body_timeout_s

        async def receive_wrapper():
            nonlocal received, body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.001, deadline - time.perf_counter()))
            except asyncio.TimeoutError:
                self._reject("body_timeout")
                raise APIError(408, "body_timeout",
                               f"the request body did not arrive within {self.settings.body_timeout_s:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    self._reject("body_too_large")
                    raise APIError(413, "body_too_large", f"request body is larger than {limit} bytes")
                if not message.get("more_body", False):
                    body_done = True
            else:
                body_done = True
            return message

        if self.metrics is not None:
            self.metrics.in_progress.inc()
        try:
            if head_bytes > self.settings.max_header_bytes:
                self._reject("headers_too_large")
                start, body = _json_error(
                    431, "headers_too_large",
                    f"request headers are larger than {self.settings.max_header_bytes} bytes",
                    [(b"connection", b"close")],
                )
                await send_wrapper(start)
                await send_wrapper({"type": "http.response.body", "body": body})
            elif length is not None and (length > limit or length < 0):
                self._reject("body_too_large")
                start, body = _json_error(
                    413 if length > limit else 400,
                    "body_too_large" if length > limit else "bad_request",
                    f"request body is larger than {limit} bytes" if length > limit else "invalid Content-Length",
                    [(b"connection", b"close")],
                )
                await send_wrapper(start)
                await send_wrapper({"type": "http.response.body", "body": body})
            else:
                await self.app(app_scope, receive_wrapper, send_wrapper)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), path)
            state["status"] = 500
            if not state["started"]:
                start, body = _json_error(500, "internal_error", "internal error; the server log has the details")
                await send_wrapper(start)
                await send_wrapper({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - t0
            route = app_scope.get("route")
            template = getattr(route, "path", None) or ("unmatched" if state["status"] == 404 else "other")
            if self.metrics is not None:
                self.metrics.in_progress.dec()
                self.metrics.observe(scope.get("method", "?"), template, state["status"], elapsed)
            if self.access:
                self._log(scope, template, state, elapsed, rid)
            REQUEST_ID.reset(token)

    def _reject(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.rejected.labels(reason).inc()

    def _log(self, scope, template: str, state: dict, elapsed: float, rid: str) -> None:
        client = scope.get("client")
        ip = client[0] if client else "-"
        who = scope.get("state", {}).get("client_id") or "-"
        ms = round(elapsed * 1000, 2)
        method, path, status = scope.get("method", "?"), scope.get("path", ""), state["status"]
        access_log.info(
            '%s %s "%s %s" %d %.1fms %dB', ip, who, method, path, status, ms, state["bytes"],
            extra={"request_id": rid, "access": {
                "method": method, "path": path, "route": template, "status": status,
                "duration_ms": ms, "bytes": state["bytes"], "client": ip, "client_id": who,
            }},
        )


def install(app, settings, metrics=None) -> None:
    configure_logging(settings)
    app.add_middleware(ServiceMiddleware, settings=settings, metrics=metrics)
