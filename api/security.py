"""Who may ask, and how often: API keys (Bearer), per-client token-bucket rate limits, CORS.

One dependency, :func:`guard`, protects every route that reads the index (``/ask``,
``/ask/stream``, ``/stats``; ``/metrics`` too with ``QA_METRICS_REQUIRE_KEY``). Health checks,
the chat page, its static files and the OpenAPI docs stay open; the chat webhooks under
``/bots/`` authenticate by their platform's signature instead, so they never see API keys.

* ``QA_API_KEYS=k1,k2``: each request must carry ``Authorization: Bearer <one of them>``;
  otherwise 401 ``unauthorized`` with ``WWW-Authenticate: Bearer``. Keys are compared in
  constant time and never logged: logs and metrics name a key by a short hash (``key:1a2b3c4d``).
* ``QA_RATE_LIMIT=N`` (per minute, 0 = off, the default): a token bucket per key, or per client
  IP when no keys are configured, holding ``QA_RATE_LIMIT_BURST`` tokens (default N) and
  refilled at N/60 per second. An empty bucket answers 429 ``rate_limited`` with
  ``Retry-After`` (whole seconds until the next token).
* ``QA_AUTH_FAILURE_LIMIT=N`` (default 10) wrong keys from one client IP within
  ``QA_AUTH_FAILURE_WINDOW_S`` (60 s): further requests from that IP to the protected routes get
  429 ``too_many_auth_failures`` with ``Retry-After``, right key or not, until the oldest failure
  leaves the window; so keys cannot be guessed at network speed. A request without any key is
  no guess and is not counted (the chat page asks for the key after such a 401).
* the client IP is the TCP peer; ``X-Forwarded-For`` replaces it only for peers in
  ``QA_TRUSTED_PROXIES`` (empty by default, applied by :mod:`api.server`).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import APIError, ErrorResponse
from qa.config import Settings

BEARER = HTTPBearer(
    auto_error=False,
    description="One of the keys in QA_API_KEYS (only needed when the server sets it).",
)

AUTH_RESPONSES = {
    401: {"model": ErrorResponse, "description": "API key missing or wrong (only when QA_API_KEYS is set)"},
    429: {"model": ErrorResponse, "description": "rate limit exceeded, or too many wrong API keys from this "
          "address; Retry-After says when to retry"},
}


def parse_keys(settings: Settings) -> tuple[bytes, ...]:
    raw = settings.api_keys.get_secret_value() if settings.api_keys is not None else ""
    return tuple(dict.fromkeys(k.strip().encode() for k in raw.split(",") if k.strip()))


def key_label(key: bytes) -> str:
    """How logs and metrics name a key: never the key itself."""
    return "key:" + hashlib.sha256(key).hexdigest()[:8]


class TokenBuckets:
    """Per-identity token buckets; thread-safe; idle full buckets are forgotten."""

    def __init__(self, per_minute: int, burst: int = 0, max_clients: int = 100_000):
        self.rate = per_minute / 60.0
        self.capacity = float(burst or per_minute)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, identity: str, now: float | None = None) -> float:
        """0 when a token was taken, else the seconds until one will be available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.get(identity, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[identity] = (tokens - 1.0, now)
                if len(self._buckets) > self.max_clients:
                    self._forget_full(now)
                return 0.0
            self._buckets[identity] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.capacity]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) > self.max_clients:  # still too many: drop the oldest half
            for k, _ in sorted(self._buckets.items(), key=lambda kv: kv[1][1])[: len(self._buckets) // 2]:
                del self._buckets[k]


class FailureWindow:
    """Failed authentications per client address in a sliding window; thread-safe, bounded."""

    def __init__(self, limit: int, window_s: float, max_clients: int = 100_000):
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, address: str, now: float | None = None) -> float:
        """0 when the address may try a key, else the seconds until it may again."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._failures.get(address)
            if not times:
                return 0.0
            while times and now - times[0] >= self.window_s:
                times.popleft()
            if not times:
                del self._failures[address]
                return 0.0
            return times[0] + self.window_s - now if len(times) >= self.limit else 0.0

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._failures.setdefault(address, deque())
            times.append(now)
            while len(times) > self.limit:
                times.popleft()
            if len(self._failures) > self.max_clients:  # forget the addresses idle longest
                idle = sorted(self._failures, key=lambda a: self._failures[a][-1] if self._failures[a] else 0.0)
                for a in idle[: len(idle) // 2]:
                    del self._failures[a]


@dataclass
class Guard:
    keys: tuple[bytes, ...] = ()
    buckets: TokenBuckets | None = None
    labels: dict[bytes, str] = field(default_factory=dict)
    failures: FailureWindow | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "Guard":
        keys = parse_keys(settings)
        buckets = TokenBuckets(settings.rate_limit, settings.rate_limit_burst) if settings.rate_limit else None
        failures = (
            FailureWindow(settings.auth_failure_limit, settings.auth_failure_window_s)
            if keys and settings.auth_failure_limit else None
        )
        return cls(keys, buckets, {k: key_label(k) for k in keys}, failures)

    def check_address(self, address: str) -> None:
        """429 while ``address`` has used up its wrong keys (before any key is compared)."""
        if self.failures is None:
            return
        wait = self.failures.wait(address)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise APIError(
                429, "too_many_auth_failures",
                f"too many wrong API keys from this address; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )

    def authenticate_from(self, address: str, token: str | None) -> str | None:
        """:meth:`authenticate`, counting a wrong key (not a missing one) against ``address``."""
        self.check_address(address)
        try:
            return self.authenticate(token)
        except APIError:
            if token and self.failures is not None:
                self.failures.failed(address)
            raise

    def authenticate(self, token: str | None) -> str | None:
        """The caller's key label, None when keys are off; raises 401 otherwise."""
        if not self.keys:
            return None
        if token:
            given = token.encode()
            match = None
            for k in self.keys:  # no early exit: time does not depend on which key matched
                if hmac.compare_digest(given, k):
                    match = k
            if match is not None:
                return self.labels[match]
        raise APIError(
            401, "unauthorized",
            "missing or invalid API key: send 'Authorization: Bearer <key>' with one of the server's QA_API_KEYS",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def throttle(self, identity: str) -> None:
        if self.buckets is None:
            return
        wait = self.buckets.take(identity)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise APIError(
                429, "rate_limited",
                f"rate limit of {self.buckets.rate * 60:g} requests per minute exceeded; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )


def _schema_without_security(app: FastAPI) -> None:
    """Without QA_API_KEYS nothing needs a key: the OpenAPI schema must not claim otherwise
    (clients and fuzzers would send keys, or expect 401s, for nothing)."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for op in operations.values():
                    if isinstance(op, dict):
                        op.pop("security", None)
                        op.get("responses", {}).pop("401", None)
            schema.get("components", {}).pop("securitySchemes", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI, settings: Settings) -> Guard:
    app.state.guard = Guard.from_settings(settings)
    if not app.state.guard.keys:
        _schema_without_security(app)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:  # closed by default: no CORS headers at all, so browsers block cross-origin reads
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    return app.state.guard


async def guard(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> str:
    """API key check, then the caller's rate limit. Returns the caller's identity (for logs)."""
    g: Guard = request.app.state.guard
    address = request.client.host if request.client else "unknown"
    label = g.authenticate_from(address, credentials.credentials if credentials else None)
    identity = label or ("ip:" + address)
    request.state.client_id = identity
    g.throttle(identity)
    return identity


_DECLARED: dict[int, frozenset[str]] = {}


def _declared_query(route) -> frozenset[str]:
    names = _DECLARED.get(id(route))
    if names is None:
        found: set[str] = set()
        stack = [route.dependant]
        while stack:
            d = stack.pop()
            found.update(p.alias for p in d.query_params)
            stack.extend(d.dependencies)
        names = _DECLARED[id(route)] = frozenset(found)
    return names


async def strict_query(request: Request) -> None:
    """Query parameters are the declared ones, each given once: ``?q=a&q=b`` or a misspelt
    ``?topk=3`` is a 422 that says so, not a silently different question."""
    route = request.scope.get("route")
    declared = _declared_query(route) if route is not None else None
    seen: set[str] = set()
    for k, _ in request.query_params.multi_items():
        if k in seen:
            raise APIError(422, "invalid_request", f"query parameter {k!r} given more than once")
        if declared is not None and k not in declared:
            allowed = ", ".join(sorted(declared)) or "none"
            raise APIError(422, "invalid_request", f"unknown query parameter {k!r} (allowed: {allowed})")
        seen.add(k)


# what protects every route that reads the index: keys, rate limit, unambiguous parameters
PROTECTED = [Depends(guard), Depends(strict_query)]
