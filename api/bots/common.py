"""What every webhook adapter shares: fast acks, background answering, replay memory.

Chat platforms give a webhook a few seconds (Slack 3 s, Feishu 3 s, WeCom 5 s) before they
retry, so an adapter only verifies, deduplicates and acknowledges in the request; answering
and posting happen on :class:`BotRuntime`'s thread pool. Each delivered event id is
remembered for ``bot_dedup_ttl_s`` (on disk, :mod:`api.bots.dedupstore`, so also across
restarts) so a platform retry, or an attacker replaying a captured signed request, never
yields a second answer.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import httpx
from fastapi import Request

from api.errors import APIError
from qa.chat import Chat
from qa.config import Settings

log = logging.getLogger("api.bots")


class Deduper:
    """A thread-safe set of recently seen keys with a time-to-live and a size bound."""

    def __init__(self, ttl_s: float, max_items: int = 100_000):
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str) -> bool:
        """True exactly once per key within the TTL (atomic: concurrent retries can't both win)."""
        now = time.monotonic()
        with self._lock:
            while self._seen:
                oldest, at = next(iter(self._seen.items()))
                if now - at < self.ttl_s and len(self._seen) < self.max_items:
                    break
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


class TokenCache:
    """An access token fetched on demand and reused until shortly before it expires.

    ``fetch`` returns ``(token, expires_in_seconds)``; Feishu and WeCom both hand out
    two-hour tokens and rate-limit the token endpoints, so fetching per message is wrong.
    """

    def __init__(self, fetch: Callable[[], tuple[str, float]]):
        self._fetch = fetch
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def get(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                token, ttl = self._fetch()
                self._token, self._expires = token, time.monotonic() + max(0.0, float(ttl) - 120)
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None


class BotRuntime:
    """Shared by all adapters of one app: the chat core, a worker pool, replay memory, HTTP."""

    def __init__(self, settings: Settings, chat: Chat):
        self.settings = settings
        self.chat = chat
        from api.bots.dedupstore import open_deduper

        self.dedup = open_deduper(settings)  # on disk (QA_BOT_STATE_DIR): survives restarts
        self.http = httpx.Client(timeout=settings.bot_http_timeout_s, follow_redirects=False)
        self.pool = ThreadPoolExecutor(max_workers=settings.bot_workers, thread_name_prefix="bot")

    def submit(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` after the ack; failures are logged (the platform has been answered 200)."""

        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("%s failed", what)

        self.pool.submit(run)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
        self.http.close()


async def read_body(request: Request) -> bytes:
    """The raw body (signatures are computed over the exact bytes), at most QA_MAX_BOT_BODY_BYTES
    (chat events are a few KB; the middleware applies the same setting before the route runs)."""
    limit = request.app.state.settings.max_bot_body_bytes
    too_large = APIError(413, "body_too_large", f"request body larger than {limit} bytes (QA_MAX_BOT_BODY_BYTES)")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = await request.body()
    if len(body) > limit:
        raise too_large
    return body


def parse_json(body: bytes | str) -> dict:
    """A JSON object or a 400: platforms never send anything else."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise APIError(400, "malformed_json", "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise APIError(400, "malformed_json", "request body is not a JSON object")
    return data


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison that treats a missing value as a mismatch."""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def unauthorized(message: str, code: str = "invalid_signature") -> APIError:
    log.info("rejected webhook: %s", message)
    return APIError(401, code, message)


def forbidden(message: str, code: str = "invalid_token") -> APIError:
    log.info("rejected webhook: %s", message)
    return APIError(403, code, message)


def secret(value) -> str:
    """The plain value of an optional SecretStr setting ('' when unset)."""
    return value.get_secret_value() if value is not None else ""
