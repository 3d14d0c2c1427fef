"""The HTTP protocol the service runs under uvicorn: header limits and which proxies to believe.

uvicorn's httptools protocol bounds neither the size of a request's headers (16 MB of headers
were accepted and buffered) nor the time a client may take to send them (a connection that
trickles its headers, or sends nothing, was kept open forever), and uvicorn believes
``X-Forwarded-For`` from 127.0.0.1 unless told otherwise. :class:`HttpProtocol` is uvicorn's
own protocol with those three things decided by our settings:

* ``QA_MAX_HEADER_BYTES``: a request line plus headers larger than this is answered
  **431** and the connection closed, as soon as that many bytes have arrived (memory per
  connection stays bounded by the limit plus one read);
* ``QA_HEADER_TIMEOUT_S``: headers that have not fully arrived this long after the connection
  opened (or, on a kept-alive connection, after the request's first byte) get **408** and the
  connection is closed; idle kept-alive connections still close after ``--timeout-keep-alive``;
* ``QA_TRUSTED_PROXIES``: the only peers whose ``X-Forwarded-For``/``X-Forwarded-Proto`` are
  applied (comma-separated IPs or networks, ``*`` for any); empty, the default, trusts nobody, whatever
  uvicorn's ``--forwarded-allow-ips`` says.

``qa serve`` uses it; with uvicorn directly pass ``--http api.server:HttpProtocol``. The
application checks the header size again (:mod:`api.middleware`), so any server answers 431.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from qa.config import Settings, get_settings


def trusted_proxies(settings: Settings) -> list[str]:
    return [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]


def with_proxy_trust(app: Any, settings: Settings) -> Any:
    """``app`` with uvicorn's proxy-header handling replaced by QA_TRUSTED_PROXIES' (none by default)."""
    inner = app.app if isinstance(app, ProxyHeadersMiddleware) else app
    proxies = trusted_proxies(settings)
    return ProxyHeadersMiddleware(inner, trusted_hosts=proxies) if proxies else inner


def uvicorn_options(settings: Settings) -> dict:
    """What ``qa serve`` passes to ``uvicorn.run``."""
    # uvicorn's own proxy handling off: HttpProtocol applies QA_TRUSTED_PROXIES instead
    return {"http": "api.server:HttpProtocol", "proxy_headers": False}


def _error(status: int, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return b"".join([
        STATUS_LINE[status], b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n", b"connection: close\r\n\r\n", body,
    ])


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with bounded header size and header-read time."""

    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.max_header_bytes = settings.max_header_bytes
        self.header_timeout = settings.header_timeout_s
        # one wrapped app per server (this runs once per connection)
        app = getattr(config, "_qa_app", None)
        if app is None:
            app = config._qa_app = with_proxy_trust(self.app, settings)
        self.app = app
        self._head_bytes = 0  # bytes of the request head being read
        self._in_body = False  # between a head's end and its message's end
        self._heads = 0  # heads completed on this connection
        self._head_timer = None

    # the timer: armed when the connection opens and when a new request's first byte arrives
    def _arm(self) -> None:
        if self._head_timer is None and self.header_timeout > 0:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._disarm()
        if self.transport is None or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # a pipelined request is still being answered: close after its response
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        self.logger.info("%s from %s", code, self.client[0] if self.client else "?")
        self.transport.write(_error(status, code, message))
        self.transport.close()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._refuse(408, "header_timeout", f"request headers did not arrive within {self.header_timeout:g} s")

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        reading_head = not self._in_body
        heads = self._heads
        super().data_received(data)
        if self._heads != heads:
            self._head_bytes = 0
        elif reading_head and not self._in_body:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(431, "headers_too_large",
                             f"request headers are larger than {self.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._heads += 1
        self._in_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()


__all__ = ["HttpProtocol", "uvicorn_options", "with_proxy_trust", "trusted_proxies"]
