"""Liveness, readiness and index statistics.

* ``/healthz``: the process answers HTTP (Kubernetes liveness). Never touches the index.
* ``/readyz``: the index is loaded and the model warm (Kubernetes readiness). While the
  server warms up, or before any ``qa ingest``, it is 503 with the reason; a 503 also starts
  (in the background) another attempt to load, so a server started before the first ingest
  becomes ready by itself once an index is published.
* ``/stats``: what the served generation holds; behind the API keys like ``/ask``.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from api.deps import AssistantDep, HolderDep
from api.errors import ErrorResponse
from api.schemas import Health, Ready
from api.security import AUTH_RESPONSES, PROTECTED
from qa.vectors.base import StoreUnavailable

router = APIRouter(tags=["health"])


class Stats(BaseModel):
    model_config = ConfigDict(extra="allow")

    generation: str
    model: str
    model_identity: str
    documents: int
    chunks: int
    index_bytes: int
    chunker: str | None = None
    updated_at: float
    last_ingest: dict | None = None
    documents_list: list[dict]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive (does not look at the index)."""
    return Health()


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready, "description": "not ready yet, with the reason"}})
async def readyz(holder: HolderDep):
    """The index is loaded and the model is warm: safe to send questions."""
    bot = holder.loaded
    if bot is None or not holder.ready:
        reason = (holder.error if not holder.warming else None) or "warming up: loading the index and the model"
        holder.warm_in_background()  # no-op while warming; retries after a missing index
        return JSONResponse(Ready(ready=False, reason=reason).model_dump(), status_code=503)
    try:
        # a shared store (Milvus) is asked whether it answers, off the event loop, within its timeout
        r = await anyio.to_thread.run_sync(_ping, bot)
    except StoreUnavailable as exc:
        return JSONResponse(Ready(ready=False, reason=str(exc)).model_dump(), status_code=503)
    return Ready(ready=True, generation=r.generation, model=r.model)


def _ping(bot):
    r = bot.reader
    r.ping()
    return r


@router.get(
    "/stats",
    response_model=Stats,
    dependencies=PROTECTED,
    responses={**AUTH_RESPONSES, 503: {"model": ErrorResponse, "description": "no index built yet"}},
)
def stats(bot: AssistantDep) -> dict:
    """What is indexed: documents (with passage counts and ingest time), model, size."""
    return {**bot.stats(), "documents_list": bot.reader.documents()}
