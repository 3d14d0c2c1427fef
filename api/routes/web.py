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

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse

from api.deps import AskQueryDep, AssistantDep, HolderDep, SettingsDep, check_length
from api.errors import APIError, ErrorResponse
from api.routes.ask import conversations_unavailable
from api.security import AUTH_RESPONSES, PROTECTED
from qa.assistant import Assistant, QuestionError
from qa.vectors.base import StoreUnavailable
from qa.questionlog import record_answer

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


async def _events(
    bot: Assistant, question: str, top_k: int, method: str, collection: str | None, qlog=None, turn=None
) -> AsyncIterator[bytes]:
    """progress(searching) → progress(composing, passages) → answer, or a final ``error`` event.

    The retrieval runs once; the page is told how many passages were found while the answer is
    composed from those same hits (identical to ``/ask``'s answer).
    """
    try:
        searched = turn.resolution.searched if turn is not None else question
        progress = {"stage": "searching"}
        if searched != question:
            progress["searched"] = searched  # a follow-up: show what is searched at once
        yield _sse("progress", progress)
        hits, timings = await run_in_threadpool(bot.retrieve, searched, top_k, method, collection)
        yield _sse("progress", {"stage": "composing", "passages": len(hits)})

        async def finish(answer):
            if turn is not None:  # remember the turn of the conversation, say where it sits
                answer = await run_in_threadpool(bot.finish, turn, answer)
            record_answer(qlog, bot, answer, "web")
            return answer

        if bot.writer.name == "llm":
            async for event in _written(bot, searched, hits, timings, finish):
                yield event
            return
        answer = await finish(await run_in_threadpool(bot.answer, searched, hits, timings))
        yield _sse("answer", answer.model_dump(mode="json"))
    except QuestionError as exc:
        yield _sse("error", {"error": {"code": "invalid_question", "message": str(exc)}})
    except StoreUnavailable as exc:  # QA_VECTOR_STORE=milvus and Milvus does not answer
        yield _sse("error", {"error": {"code": "store_unavailable", "message": str(exc)}})
    except Exception:  # the status line is already sent: report in-band, never a stack trace
        log.exception("unhandled error while streaming an answer")
        yield _sse("error", {"error": {"code": "internal_error", "message": "internal error; the server log has the details"}})


async def _written(bot: Assistant, question: str, hits, timings, finish) -> AsyncIterator[bytes]:
    """An LLM writer's text as ``token`` events while it streams, then the verified ``answer``.

    Tokens are the model's raw text (unverified); the ``answer`` event carries the checked
    text, with ``sentences[i].supported``, which the page shows in their place."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()

    def on_token(piece: str) -> None:  # called on the LLM thread
        loop.call_soon_threadsafe(queue.put_nowait, piece)

    task = asyncio.ensure_future(run_in_threadpool(bot.answer, question, hits, timings, None, None, on_token))
    while not task.done():
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            yield _sse("token", {"text": getter.result()})
        else:
            getter.cancel()
    answer = await finish(task.result())
    yield _sse("answer", answer.model_dump(mode="json"))


@router.get(
    "/ask/stream",
    tags=["ask"],
    response_class=StreamingResponse,
    dependencies=PROTECTED,  # the same API keys and rate limit as /ask (api/security.py)
    responses={
        **AUTH_RESPONSES,
        200: {"content": {"text/event-stream": {}}, "description": "progress events, then one answer (or error) event"},
        422: {"model": ErrorResponse, "description": "invalid question or parameters"},
        503: {"model": ErrorResponse, "description": "no index built yet"},
    },
)
async def ask_stream(bot: AssistantDep, settings: SettingsDep, req: AskQueryDep, holder: HolderDep) -> StreamingResponse:
    """Like ``GET /ask``, as server-sent events: ``progress`` (searching, composing) then ``answer`` (the Answer JSON)."""
    # the dependency loads the index off the event loop, or answers 503 as JSON before any event
    check_length(req, settings)
    question, top_k, method, collection = req.question, req.top_k, req.method, req.collection
    try:
        question = bot.validate(question)
    except QuestionError as exc:
        raise APIError(422, "invalid_question", str(exc)) from None
    try:  # the conversation is found before the first byte, so a broken store is a plain 503
        turn = await run_in_threadpool(bot.begin, question, req.conversation_id or True)
    except (sqlite3.Error, OSError) as exc:
        raise conversations_unavailable(exc) from None
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"}
    events = _events(bot, question, top_k, method, collection, getattr(holder, "questions", None), turn)
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)
