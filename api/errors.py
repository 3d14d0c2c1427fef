"""One JSON error shape everywhere: ``{"error": {"code", "message"}}``; never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger("api")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class APIError(HTTPException):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(status, message, headers)
        self.code = code


def error_json(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _describe(errors: list[dict]) -> str:
    parts = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query"))
        parts.append(f"{loc or 'request'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """The methods the app answers on the request's path (HEAD with GET, OPTIONS always)."""
    methods = {"OPTIONS"}
    routes = request.app.router.routes
    for m in _METHOD_ORDER[:-1]:  # asked route by route, through the public matches()
        probe = {**request.scope, "method": m}
        if any(route.matches(probe)[0] == Match.FULL for route in routes):
            methods.add(m)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods, key=lambda m: _METHOD_ORDER.index(m) if m in _METHOD_ORDER else len(_METHOD_ORDER))


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError):
        return error_json(exc.status_code, exc.code, str(exc.detail), exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 405:
            # Allow: every method of every route on this path (FastAPI names only the first route's)
            allow = {"Allow": ", ".join(allowed_methods(request))}
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=allow)
            return error_json(405, "method_not_allowed", f"{request.method} is not allowed here; use {allow['Allow']}", allow)
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer to a body that is not UTF-8: the same 422 as malformed JSON
            return error_json(422, "invalid_request", "request body is not valid JSON (UTF-8)")
        code = {
            400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
            408: "body_timeout", 413: "body_too_large", 429: "rate_limited", 431: "headers_too_large",
            503: "unavailable",
        }.get(exc.status_code, "http_error")
        return error_json(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        return error_json(422, "invalid_request", _describe(exc.errors()))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_json(500, "internal_error", "internal error; the server log has the details")
