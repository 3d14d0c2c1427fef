"""The FastAPI application: ``uvicorn api.main:create_app --factory``.

Production: ``uvicorn api.main:create_app --factory --host 0.0.0.0 --port 8000 --no-access-log``
(one process; it uses every core through its worker threads and batched embeddings), see
docs/service.md for settings, security and deployment.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from api import errors, metrics, middleware, security
from api.bots import mount_bots
from api.runtime import AssistantHolder
from api.schemas import publish_limits
from api.routes import ask, health
from api.routes import web
from api.routes import admin, feedback
from qa import __version__
from qa import questionlog
from qa.config import Settings

DESCRIPTION = """Answers questions from a team's Chinese Markdown articles, citing the passages used.

When the server sets `QA_API_KEYS`, `/ask`, `/ask/stream`, `/feedback` and `/stats` need
`Authorization: Bearer <key>`; `/healthz`, `/readyz`, `/metrics`, the chat page and these docs
stay open. `/admin/gaps` (the knowledge-gap report) needs a key and is closed without keys. Errors always have the shape `{"error": {"code": "...", "message": "..."}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # no redirect_slashes: "/static/app.js/" is a 404, never a redirect to a URL built from Host
    app = FastAPI(title="zh-qa", version=__version__, description=DESCRIPTION, redirect_slashes=False)
    app.state.settings = settings
    m = metrics.install(app)
    holder = app.state.holder = AssistantHolder(settings, metrics=m)
    holder.questions = questionlog.open_log(settings)  # None with QA_QUESTION_LOG=off
    # Load the index and warm the model in the background: /healthz answers at once, /readyz
    # turns 200 once a first question has been answered internally.
    app.router.on_startup.append(holder.warm_in_background)
    app.router.on_shutdown.append(holder.close)
    app.router.on_shutdown.append(questionlog.close_logs)  # write what is still queued
    errors.install(app)
    security.install(app, settings)  # API keys, rate limits, CORS (closed unless QA_CORS_ORIGINS)
    middleware.install(app, settings, m)  # outermost: request id, body limits, access log, metrics

    app.include_router(ask.router, dependencies=security.PROTECTED, responses=security.AUTH_RESPONSES)
    app.include_router(feedback.router, dependencies=security.PROTECTED, responses=security.AUTH_RESPONSES)
    app.include_router(admin.router)  # /admin/gaps: needs QA_API_KEYS (Bearer or Basic), see api/routes/admin.py
    app.include_router(health.router)
    app.include_router(metrics.router([Depends(security.guard)] if settings.metrics_require_key else []))
    mount_bots(app, settings)  # /bots/<platform>, only for configured platforms; signatures, not keys
    app.include_router(web.router)
    publish_limits(app, settings)  # the question's maxLength in /openapi.json is QA_MAX_QUESTION_CHARS
    return app
