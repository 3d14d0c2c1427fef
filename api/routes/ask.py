"""POST /ask and GET /ask?q=... — answer a question with cited passages.

The question goes through the service runtime (:meth:`api.runtime.AssistantHolder.ask`, the
same path as ``/ask/stream``): no loading and no CPU work on the event loop, load shedding
beyond QA_MAX_PENDING, the question's embedding awaited from the batching embedder
(:mod:`api.batching`), search and composition on the worker pool (sized to the cores).
API keys and rate limits are applied to this router by ``api.main`` (:mod:`api.security`).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter

from api.deps import AskQueryDep, AssistantDep, HolderDep
from api.errors import ErrorResponse
from api.schemas import AskRequest
from qa.responses import Answer

log = logging.getLogger("api")
router = APIRouter(tags=["ask"])


ERRORS = {
    422: {"model": ErrorResponse, "description": "invalid question or parameters (e.g. a conversation_id not of our form)"},
    503: {"model": ErrorResponse, "description": "no index built yet, the server is too busy (Retry-After), or the conversation store is unavailable"},
}
POST_ERRORS = {
    **ERRORS,
    413: {"model": ErrorResponse, "description": "request body larger than QA_MAX_BODY_BYTES"},
    408: {"model": ErrorResponse, "description": "request body did not arrive within QA_BODY_TIMEOUT_S"},
}


@router.post("/ask", response_model=Answer, responses=POST_ERRORS)
async def ask_post(req: AskRequest, bot: AssistantDep, holder: HolderDep) -> Answer:
    """Answer a question from the indexed articles, citing the passages used."""
    return await holder.ask(bot, req)


@router.get("/ask", response_model=Answer, responses=ERRORS)
async def ask_get(bot: AssistantDep, holder: HolderDep, req: AskQueryDep) -> Answer:
    """Same as POST /ask, for links and quick curl checks."""
    return await holder.ask(bot, req)
