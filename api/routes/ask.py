"""POST /ask and GET /ask?q=... — answer a question with cited passages."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from api.deps import AssistantDep, SettingsDep
from api.errors import APIError, ErrorResponse
from api.schemas import AskRequest
from qa.assistant import QuestionError
from qa.models import Answer

router = APIRouter(tags=["ask"])
ERRORS = {
    422: {"model": ErrorResponse, "description": "invalid question or parameters"},
    503: {"model": ErrorResponse, "description": "no index built yet"},
}


async def _answer(bot, settings, req: AskRequest) -> Answer:
    if len(req.question) > settings.max_question_chars:
        raise APIError(
            422, "question_too_long",
            f"question is {len(req.question)} characters long; the limit is {settings.max_question_chars}",
        )
    try:
        return await run_in_threadpool(bot.ask, req.question, req.top_k, req.method, req.collection)
    except QuestionError as exc:
        raise APIError(422, "invalid_question", str(exc)) from None


@router.post("/ask", response_model=Answer, responses=ERRORS)
async def ask_post(req: AskRequest, bot: AssistantDep, settings: SettingsDep) -> Answer:
    """Answer a question from the indexed articles, citing the passages used."""
    return await _answer(bot, settings, req)


@router.get("/ask", response_model=Answer, responses=ERRORS)
async def ask_get(
    bot: AssistantDep,
    settings: SettingsDep,
    q: Annotated[str, Query(min_length=1, max_length=2000, description="The question.")],
    top_k: Annotated[int, Query(ge=1, le=50)] = 5,
    collection: Annotated[str | None, Query(max_length=200)] = None,
    method: Literal["hybrid", "dense", "lexical"] = "hybrid",
) -> Answer:
    """Same as POST /ask, for links and quick curl checks."""
    try:
        req = AskRequest(question=q, top_k=top_k, collection=collection, method=method)
    except ValueError as exc:
        raise APIError(422, "invalid_question", "question is empty or only whitespace") from exc
    return await _answer(bot, settings, req)
