"""The browser chat page at ``/``, its static files, and ``GET /ask/stream`` (progress as server-sent events).

Why this shape:

* plain files under ``api/static/`` (HTML, CSS, ES modules) served by the app itself: no build
  step, no framework and no CDN, because the machines that run this are offline;
* every page response carries a strict Content-Security-Policy (``default-src 'self'``, no inline
  script or style) and ``X-Content-Type-Options: nosniff``: article text is untrusted input, and the
  page renders it only as text, so a policy that forbids inline code is a second, independent fence;
* ``/ask/stream`` speaks SSE over a normal GET so the page can read it with ``fetch`` (which,
  unlike ``EventSource``, can send ``Authorization: Bearer``) and show "searching… / composing…"
  while a slow answer is being made. Errors known before the first byte (bad question, no index,
  missing API key) are ordinary JSON errors with their HTTP status, so the page handles them like
  ``/ask``'s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, StreamingResponse

from api.deps import AskQueryDep, AssistantDep, HolderDep
from api.errors import APIError, ErrorResponse
from api.runtime import Step
from api.security import AUTH_RESPONSES, PROTECTED
from qa.limits import QuestionError
from qa.vectors.base import StoreUnavailable

log = logging.getLogger("api")
router = APIRouter(tags=["web"])

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # the files change with the code; let browsers revalidate instead of serving a stale page
    "Cache-Control": "no-cache",
}


def _static_files() -> dict[str, Path]:
    """An allow-list of servable names, fixed at start-up: no path from a URL ever reaches the disk."""
    if not STATIC_DIR.is_dir():
        return {}
    return {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in MEDIA_TYPES}


FILES = _static_files()


def _file(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise APIError(404, "not_found", f"no static file {name!r}")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The chat page."""
    return _file("index.html")


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> FileResponse:
    """The page's CSS, JavaScript modules and icon."""
    return _file(name)


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _events(steps: AsyncIterator[Step], first: Step) -> AsyncIterator[bytes]:
    """progress(searching) → progress(composing, passages) → [token…] → answer, or a final ``error`` event.

    ``steps`` is the runtime's :meth:`~api.runtime.AssistantHolder.stream`, whose ``first``
    step was awaited before the response began (so a refusal was a plain JSON error)."""
    try:
        step = first
        while True:
            if step.kind == "searching":
                progress = {"stage": "searching"}
                if step.value is not None:
                    progress["searched"] = step.value  # a follow-up: show what is searched at once
                yield _sse("progress", progress)
            elif step.kind == "composing":
                yield _sse("progress", {"stage": "composing", "passages": step.value})
            elif step.kind == "token":
                yield _sse("token", {"text": step.value})
            else:
                yield _sse("answer", step.value.model_dump(mode="json"))
                return
            step = await anext(steps)
    except (QuestionError, APIError) as exc:
        code = getattr(exc, "code", "invalid_question")
        yield _sse("error", {"error": {"code": code, "message": str(getattr(exc, "detail", exc))}})
    except StoreUnavailable as exc:  # QA_VECTOR_STORE=milvus and Milvus does not answer
        yield _sse("error", {"error": {"code": "store_unavailable", "message": str(exc)}})
    except Exception:  # the status line is already sent: report in-band, never a stack trace
        log.exception("unhandled error while streaming an answer")
        yield _sse("error", {"error": {"code": "internal_error", "message": "internal error; the server log has the details"}})
    finally:
        await steps.aclose()  # the question stops counting as pending even if the client left


@router.get(
    "/ask/stream",
    tags=["ask"],
    response_class=StreamingResponse,
    dependencies=PROTECTED,  # the same API keys and rate limit as /ask (api/security.py)
    responses={
        **AUTH_RESPONSES,
        200: {"content": {"text/event-stream": {}}, "description": "progress events, then one answer (or error) event"},
        422: {"model": ErrorResponse, "description": "invalid question or parameters"},
        503: {"model": ErrorResponse, "description": "no index built yet, the server is too busy (Retry-After), or the conversation store is unavailable"},
    },
)
async def ask_stream(bot: AssistantDep, req: AskQueryDep, holder: HolderDep) -> StreamingResponse:
    """Like ``GET /ask``, as server-sent events: ``progress`` (searching, composing) then ``answer`` (the Answer JSON)."""
    # the dependency loads the index off the event loop, or answers 503 as JSON before any event;
    # the runtime's first step (length, QA_MAX_PENDING, the conversation) also comes before any byte
    steps = holder.stream(bot, req)
    try:
        first = await anext(steps)
    except StopAsyncIteration:  # never: a stream ends with its answer
        raise APIError(500, "internal_error", "the answer stream ended early") from None
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"}
    return StreamingResponse(_events(steps, first), media_type="text/event-stream", headers=headers)
