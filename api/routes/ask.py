"""POST /ask and GET /ask?q=... — answer a question with cited passages.

The hot path does no loading and no CPU work on the event loop: the question's embedding is
awaited from the batching embedder (:mod:`api.batching`, shared with concurrent questions),
then search and answer composition run on the holder's worker pool (sized to the cores).
API keys and rate limits are applied to this router by ``api.main`` (:mod:`api.security`).
"""

from __future__ import annotations

import logging
import sqlite3
import time

from fastapi import APIRouter

from api.deps import AskQueryDep, AssistantDep, HolderDep, SettingsDep, check_length
from api.errors import APIError, ErrorResponse
from api.schemas import AskRequest
from qa.assistant import QuestionError
from qa.conversations import BadConversationId
from qa.models import Answer
from qa.questionlog import record_answer

log = logging.getLogger("api")
router = APIRouter(tags=["ask"])


def conversations_unavailable(exc: Exception) -> APIError:
    """The conversations file cannot be read or written (read-only index folder, full disk)."""
    log.error("conversation store failed: %s", exc)
    return APIError(503, "conversations_unavailable", f"the conversation store is unavailable ({exc}); "
                    "check that QA_CONVERSATIONS_DB (default <index>/conversations.sqlite) is writable")


ERRORS = {
    422: {"model": ErrorResponse, "description": "invalid question or parameters (e.g. a conversation_id not of our form)"},
    503: {"model": ErrorResponse, "description": "no index built yet, the server is too busy (Retry-After), or the conversation store is unavailable"},
}
POST_ERRORS = {
    **ERRORS,
    413: {"model": ErrorResponse, "description": "request body larger than QA_MAX_BODY_BYTES"},
    408: {"model": ErrorResponse, "description": "request body did not arrive within QA_BODY_TIMEOUT_S"},
}


async def _answer(bot, holder, settings, req: AskRequest) -> Answer:
    check_length(req, settings)
    holder.admit()
    try:
        question = bot.validate(req.question)
        if req.conversation_id is None and bot.writer.name != "llm":
            # a new conversation has no earlier turns: the question is searched as asked
            if req.method != "lexical":
                await holder.embed(bot, question)  # batched with concurrent questions; then a cache hit
            answer = await holder.run(bot.ask, question, req.top_k, req.method, req.collection, None, True)
        else:
            turn = await holder.run(bot.begin, question, req.conversation_id or True)
            searched = turn.resolution.searched
            if req.method != "lexical":
                await holder.embed(bot, searched)
            if bot.writer.name == "llm":  # search on the CPU workers, the LLM wait on its own threads
                t0 = time.perf_counter()
                hits, timings = await holder.run(bot.retrieve, searched, req.top_k, req.method, req.collection)
                answer = await holder.run_llm(bot.answer, searched, hits, timings, None, t0)
                answer = await holder.run(bot.finish, turn, answer)
            else:
                answer = await holder.run(bot.complete, turn, req.top_k, req.method, req.collection)
    except QuestionError as exc:
        raise APIError(422, "invalid_question", str(exc)) from None
    except BadConversationId as exc:
        raise APIError(422, "invalid_conversation_id", str(exc)) from None
    except (sqlite3.Error, OSError) as exc:
        raise conversations_unavailable(exc) from None
    finally:
        holder.release()
    holder.note_generation(answer.index.generation)
    record_answer(getattr(holder, "questions", None), bot, answer, "http")  # queued, no I/O here
    return answer


@router.post("/ask", response_model=Answer, responses=POST_ERRORS)
async def ask_post(req: AskRequest, bot: AssistantDep, holder: HolderDep, settings: SettingsDep) -> Answer:
    """Answer a question from the indexed articles, citing the passages used."""
    return await _answer(bot, holder, settings, req)


@router.get("/ask", response_model=Answer, responses=ERRORS)
async def ask_get(bot: AssistantDep, holder: HolderDep, settings: SettingsDep, req: AskQueryDep) -> Answer:
    """Same as POST /ask, for links and quick curl checks."""
    return await _answer(bot, holder, settings, req)
