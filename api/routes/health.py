"""Liveness, readiness and index statistics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import HolderDep
from api.errors import APIError
from api.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive (does not look at the index)."""
    return Health()


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}})
async def readyz(holder: HolderDep):
    """The index is loaded and the model is warm: safe to send questions."""
    try:
        bot = holder.get()
    except APIError as exc:
        return JSONResponse(Ready(ready=False, reason=str(exc.detail)).model_dump(), status_code=503)
    r = bot.reader
    return Ready(ready=True, generation=r.generation, model=r.model)


@router.get("/stats")
async def stats(holder: HolderDep) -> dict:
    """What is indexed: documents (with passage counts and ingest time), model, size."""
    bot = holder.get()
    return {**bot.stats(), "documents_list": bot.reader.documents()}
