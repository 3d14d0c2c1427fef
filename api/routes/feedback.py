"""POST /feedback — 👍/👎 on an answer, named by its ``answer_id``.

Protected like ``/ask`` (API keys, the same per-client rate limit: ``api.main`` applies
:data:`api.security.PROTECTED`). One vote per answer and voter: the voter is a salted hash of the
caller's identity (API-key label, else client IP), so voting twice is a no-op and voting the
other way replaces the first vote. Votes land in the question log (:mod:`qa.questionlog`) and
down-votes appear in ``qa gaps``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from api.deps import HolderDep
from api.errors import APIError, ErrorResponse
from qa.questionlog import UnknownAnswer

router = APIRouter(tags=["feedback"])


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"answer_id": "ans_0123456789abcdef0123", "vote": "down", "comment": "过时了"}]}
    )

    answer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="from the Answer")
    vote: Literal["up", "down"]
    comment: str | None = Field(None, max_length=1000, description="optional: what was wrong or missing")


class FeedbackResult(BaseModel):
    answer_id: str
    vote: Literal["up", "down"]
    changed: bool = Field(description="false when this voter had already cast this vote")


@router.post(
    "/feedback",
    response_model=FeedbackResult,
    responses={
        404: {"model": ErrorResponse, "description": "no such answer (or the question log is off)"},
        422: {"model": ErrorResponse, "description": "invalid vote"},
    },
)
async def feedback(req: FeedbackRequest, request: Request, holder: HolderDep) -> FeedbackResult:
    """Vote on an answer; the same voter voting again changes (never doubles) the vote."""
    qlog = getattr(holder, "questions", None)
    if qlog is None:
        raise APIError(404, "unknown_answer", "answers are not recorded on this server (QA_QUESTION_LOG=off), so they cannot be voted on")
    voter = qlog.hash_identity(getattr(request.state, "client_id", None) or "anonymous")
    try:
        r = await run_in_threadpool(qlog.vote, req.answer_id, voter, req.vote, req.comment)
    except UnknownAnswer:
        raise APIError(404, "unknown_answer", f"no answer with id {req.answer_id!r}: vote on an answer this server gave") from None
    return FeedbackResult(answer_id=r.answer_id, vote=r.vote, changed=r.changed)
