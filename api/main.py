"""The FastAPI application: ``uvicorn api.main:create_app --factory``."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from api import errors
from api.bots import mount_bots
from api.deps import AssistantHolder
from api.routes import ask, health
from api.routes import web
from qa import __version__
from qa.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="zh-qa",
        version=__version__,
        description="Answers questions from a team's Chinese Markdown articles, citing the passages used.",
    )
    app.state.settings = settings
    app.state.holder = AssistantHolder(settings)
    errors.install(app)
    app.include_router(ask.router)
    app.include_router(health.router)
    mount_bots(app, settings)  # /bots/<platform>, only for configured platforms
    app.include_router(web.router)

    @app.on_event("startup")
    async def _warm() -> None:
        # Load the index and model before the first request, when an index exists.
        try:
            bot = app.state.holder.get()
            bot.embedder.encode_query("warm up")
        except Exception as exc:  # no index yet: /readyz says why, /ask answers 503
            logging.getLogger("api").warning("not ready: %s", exc)

    return app
