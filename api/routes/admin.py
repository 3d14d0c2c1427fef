"""GET /admin/gaps — the knowledge-gap report (:mod:`qa.gaps`) as an HTML page for the writers.

Needs one of ``QA_API_KEYS`` and is closed (403) on a server without keys: the page shows
what people asked. A browser gets a Basic-auth prompt (any user name, the key as password);
scripts may send ``Authorization: Bearer <key>``. The caller's rate limit is the one ``/ask``
uses. The page carries no script and a CSP that forbids any (questions are hostile input and
are escaped, see :mod:`qa.gaps_html`).
"""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import HolderDep, SettingsDep
from api.errors import APIError, ErrorResponse
from qa.gaps import build_report, parse_since
from qa.gaps_html import CSP, render_html

router = APIRouter(tags=["admin"])
REALM = 'Basic realm="zh-qa admin", charset="UTF-8"'
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            _user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        return password or None
    return None


def admin_guard(request: Request) -> str:
    """The caller's key label; 403 without server keys, 401 (with a Basic prompt) without a valid key."""
    g = request.app.state.guard
    if not g.keys:
        raise APIError(403, "admin_closed", "the admin pages need QA_API_KEYS to be set on the server")
    address = request.client.host if request.client else "unknown"
    try:  # wrong keys count against the address like /ask's (QA_AUTH_FAILURE_LIMIT)
        label = g.authenticate_from(address, _token(request))
    except APIError as exc:
        if exc.status_code != 401:
            raise
        raise APIError(401, "unauthorized", str(exc.detail), headers={"WWW-Authenticate": REALM}) from None
    request.state.client_id = label
    g.throttle(label)
    return label


@router.get(
    "/admin/gaps",
    response_class=HTMLResponse,
    responses={
        401: {"model": ErrorResponse, "description": "API key missing or wrong"},
        403: {"model": ErrorResponse, "description": "the server has no QA_API_KEYS"},
        404: {"model": ErrorResponse, "description": "the question log is off"},
        429: {"model": ErrorResponse, "description": "rate limited"},
    },
)
async def gaps_page(
    request: Request,
    holder: HolderDep,
    settings: SettingsDep,
    since: str = Query("30d", max_length=16, description="period: 30d, 12h, 2w"),
    top: int = Query(30, ge=1, le=500, description="topics shown"),
    format: str = Query("html", pattern="^(html|json)$", description="html (default) or json"),
):
    """What people asked that the articles don't answer: topics, down-votes, stubs, the not-covered rate."""
    admin_guard(request)
    qlog = getattr(holder, "questions", None)
    if qlog is None:
        raise APIError(404, "question_log_off", "the question log is off (QA_QUESTION_LOG=off): there is nothing to report")
    try:
        since_s = parse_since(since)
    except ValueError as exc:
        raise APIError(422, "invalid_since", str(exc)) from None

    def build():
        reader = embed = None
        try:
            bot = holder.get()
            reader = bot.reader
            embed = bot.embedder.encode_queries
        except APIError:  # no index yet: the report still lists the questions
            pass
        qlog.flush(2)
        return build_report(qlog, since_s, reader=reader, settings=settings, embed=embed, top=top)

    report = await run_in_threadpool(build)
    if format == "json":
        return JSONResponse(report.model_dump(mode="json"), headers={"Cache-Control": "no-store"})
    return HTMLResponse(render_html(report), headers=HEADERS)
