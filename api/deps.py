"""FastAPI dependencies: the settings, the service runtime (:mod:`api.runtime`), the loaded
Assistant, and GET /ask's query parameters as an :class:`api.schemas.AskRequest`."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from fastapi import Depends, Query, Request
from pydantic import BeforeValidator

from api.errors import APIError
from api.runtime import AssistantHolder
from api.schemas import CONVERSATION_ID_PATTERN, AskRequest
from qa.assistant import Assistant
from qa.config import Settings


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_holder(request: Request) -> AssistantHolder:
    return request.app.state.holder


async def get_assistant(request: Request) -> Assistant:
    """The loaded assistant; loads it on a worker thread (never the event loop) when not yet loaded."""
    holder: AssistantHolder = request.app.state.holder
    bot = holder.current()
    if bot is not None:
        return bot
    return await anyio.to_thread.run_sync(holder.get)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
HolderDep = Annotated[AssistantHolder, Depends(get_holder)]
AssistantDep = Annotated[Assistant, Depends(get_assistant)]


def _digits(value: object) -> object:
    """A query's top_k is written in digits: "3", not "3.0", " 3" or "true"."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("top_k must be a whole number written in digits")
    return value


async def ask_query(
    # the length limit is QA_MAX_QUESTION_CHARS: checked by the runtime, published by api.schemas.publish_limits
    q: Annotated[str, Query(min_length=1, description="The question.")],
    # int with a None default (not int | None): a query parameter is a number or absent, never null
    top_k: Annotated[
        int, Query(ge=1, le=50, description="How many passages to cite (default: QA_TOP_K)."), BeforeValidator(_digits)
    ] = None,
    collection: Annotated[str | None, Query(max_length=200, description="Only search this collection.")] = None,
    method: Literal["hybrid", "dense", "lexical"] = "hybrid",
    conversation_id: Annotated[str | None, Query(max_length=64, description="Continue this conversation.",
                                                 json_schema_extra={"pattern": CONVERSATION_ID_PATTERN})] = None,
) -> AskRequest:
    """GET /ask and /ask/stream take POST /ask's body as query parameters, with the same checks."""
    from qa.conversations import BadConversationId, check_id

    if conversation_id:
        try:
            check_id(conversation_id)
        except BadConversationId as exc:
            raise APIError(422, "invalid_conversation_id", str(exc)) from None
    try:
        given = {"top_k": top_k} if top_k is not None else {}  # absent: QA_TOP_K
        return AskRequest(question=q, collection=collection, method=method, conversation_id=conversation_id or None, **given)
    except ValueError as exc:
        raise APIError(422, "invalid_question", "question is empty or only whitespace") from exc


AskQueryDep = Annotated[AskRequest, Depends(ask_query)]
