"""The service runtime: everything a question needs that is costly to make, and the one path
every question route (``/ask``, ``/ask/stream``) takes through it.

:class:`AssistantHolder` opens the index and model once (in the background at start-up, so
``/healthz`` answers at once and ``/readyz`` turns 200 when the model is warm), gives the
Assistant its query encoder (the micro-batcher of :mod:`api.batching`, through
``Assistant(query_encoder=)``), and runs CPU work on a thread pool sized to the machine
(:meth:`AssistantHolder.run`), never on the event loop. The Assistant itself follows
``qa ingest``: a newly published generation is picked up by the next question, while
questions in flight finish on the old one.

A question, whichever route asks it: the length rule (:func:`qa.limits.check_question`), load
shedding beyond ``QA_MAX_PENDING`` (503 ``busy`` with ``Retry-After``), its embedding awaited
from the batcher, retrieval and composition on the worker pool (an LLM writer's wait on its
own threads), the generation metric and the question log. :meth:`AssistantHolder.ask` returns
the answer; :meth:`AssistantHolder.stream` yields the same steps as they happen.
:mod:`api.deps` only hands these to FastAPI.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Callable, Literal, TypeVar

import anyio

from api.batching import BatchingEmbedder
from api.errors import APIError
from api.schemas import AskRequest
from qa.assistant import Assistant
from qa.config import Settings
from qa.conversations import BadConversationId
from qa.limits import QuestionError, check_question
from qa.responses import Answer
from qa.questionlog import record_answer
from qa.store import IndexMismatch, IndexNotFound, generation_number
from qa.vectors.base import StoreUnavailable

log = logging.getLogger("api")
T = TypeVar("T")


def conversations_unavailable(exc: Exception) -> APIError:
    """The conversations file cannot be read or written (read-only index folder, full disk)."""
    log.error("conversation store failed: %s", exc)
    return APIError(503, "conversations_unavailable", f"the conversation store is unavailable ({exc}); "
                    "check that QA_CONVERSATIONS_DB (default <index>/conversations.sqlite) is writable")


@dataclass
class Step:
    """One step of a streamed answer: ``searching`` (``value``: what is searched when a follow-up
    was rewritten, else None), ``composing``
    (``value``: how many passages were found), ``token`` (an LLM writer's raw text) or
    ``answer`` (``value``: the :class:`qa.responses.Answer`)."""

    kind: Literal["searching", "composing", "token", "answer"]
    value: Any


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def single_threaded_faiss() -> None:
    """A server searches one question per call, in parallel worker threads: FAISS's OpenMP team
    buys nothing for one query over a flat index and its spinning threads take the cores the
    other questions need."""
    import faiss

    faiss.omp_set_num_threads(1)


class AssistantHolder:
    """The service runtime. Opens the index on first use so the server can start before `qa ingest` has run."""

    def __init__(self, settings: Settings, metrics=None):
        self.settings = settings
        self.metrics = metrics
        self._bot: Assistant | None = None
        self._lock = threading.RLock()  # held while the index and model load (seconds)
        self._warm_lock = threading.Lock()  # never held for long: /readyz takes it on the event loop
        self.error: str | None = None
        self.ready = False
        self.warming = False
        self.generation: str | None = None
        self.pending = 0  # questions admitted and not finished (event-loop thread only)
        self.threads = settings.worker_threads or 2 * cores()
        self._limiter: anyio.CapacityLimiter | None = None
        self._llm_limiter: anyio.CapacityLimiter | None = None
        self._warm_thread: threading.Thread | None = None
        self._batchers: list[BatchingEmbedder] = []
        self._closed = False
        self.questions = None  # the question log (qa.questionlog), set by api.main

    # ---- the assistant ---------------------------------------------------------------------
    def get(self) -> Assistant:
        bot = self._bot
        if bot is not None and not self._closed:
            return bot
        with self._lock:
            if self._bot is not None and self._closed:  # a question after close(): batch again
                self._closed = False
                self._bot.use_query_encoder(self._query_encoder)
            if self._bot is None:
                try:
                    bot = Assistant.open(settings=self.settings, query_encoder=self._query_encoder)
                except IndexNotFound as exc:
                    self.error = str(exc)
                    raise APIError(503, "index_missing", str(exc)) from None
                except IndexMismatch as exc:
                    self.error = str(exc)
                    raise APIError(503, "index_mismatch", str(exc)) from None
                except StoreUnavailable as exc:
                    self.error = str(exc)
                    raise APIError(503, "store_unavailable", str(exc), headers={"Retry-After": "5"}) from None
                self.generation = bot.reader.generation
                self._bot = bot
                self.error = None
        return self._bot

    def _query_encoder(self, emb):
        """What the Assistant embeds questions with (its injection point, ``Assistant(query_encoder=)``):
        ``emb`` behind the micro-batcher, called again by the Assistant after a model change."""
        workers = self.settings.embed_workers or cores()
        # questions are embedded concurrently (by the workers, or by the request threads when
        # batching is off): one torch thread each, unless the workers are fewer than the cores.
        # Intra-op threads of one short query buy little, and on a busy machine OpenMP threads
        # spinning for a core make one query take seconds (measured: 2.2 s with 2 threads vs
        # 80 ms with 1 under load).
        emb.set_threads(max(1, (self.settings.threads or cores()) // workers))
        if self.settings.embed_batch_max <= 1:
            return emb
        on_batch = self.metrics.batch.observe if self.metrics is not None else None
        batcher = BatchingEmbedder(
            emb, self.settings.embed_batch_max, self.settings.embed_batch_ms / 1000,
            in_flight=lambda: self.pending, on_batch=on_batch, workers=workers,
        )
        with self._lock:
            self._batchers.append(batcher)
        return batcher

    @property
    def loaded(self) -> Assistant | None:
        return self._bot

    def warm(self) -> None:
        """Open the index, load the model and answer one question, so the first user waits for nothing."""
        t0 = time.perf_counter()
        # jieba's dictionary and OpenCC load on another core while torch and the model load here
        from qa import lexical

        lex = threading.Thread(target=lexical.warm, name="qa-warm-lexical", daemon=True)
        lex.start()
        single_threaded_faiss()
        bot = self.get()
        lex.join()
        bot.ask("Kubernetes 是什么？")
        bot.embedder.encode_queries(["预热", "warm up"])  # the batched path too
        self.ready = True
        log.info("ready in %.1f s: generation %s, %d passages", time.perf_counter() - t0,
                 bot.reader.generation, bot.reader.n_chunks)

    def warm_in_background(self) -> None:
        """Start warming unless it is running or done; /readyz says 503 until it is done.

        Called from /readyz on the event loop, so it must not wait for ``_lock``, which
        ``get()`` holds while the model loads: that stalled every request for the whole warm-up."""
        with self._warm_lock:
            if self.ready or (self._warm_thread is not None and self._warm_thread.is_alive()):
                return
            self.warming = True
            self._warm_thread = threading.Thread(target=self._warm_safely, name="qa-warm", daemon=True)
            self._warm_thread.start()

    def _warm_safely(self) -> None:
        try:
            self.warm()
        except APIError as exc:
            log.warning("not ready: %s", exc.detail)
        except Exception as exc:  # a broken model folder, say: /readyz reports it
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("warm-up failed")
        finally:
            self.warming = False

    def note_generation(self, generation: str) -> None:
        """Count a switch to a newer generation (a late answer from the old one is no switch)."""
        if generation_number(generation) > generation_number(self.generation):
            log.info("serving index generation %s (was %s)", generation, self.generation)
            self.generation = generation
            if self.metrics is not None:
                self.metrics.index_swaps.inc()

    # ---- running CPU work ---------------------------------------------------------------------
    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # created lazily: it belongs to the running event loop
            self._limiter = anyio.CapacityLimiter(self.threads)
        return self._limiter

    def admit(self) -> None:
        """Count a question in; beyond QA_MAX_PENDING answer 503 at once instead of queueing forever."""
        if self.pending >= self.settings.max_pending:
            if self.metrics is not None:
                self.metrics.rejected.labels("busy").inc()
            raise APIError(503, "busy", f"the server is answering {self.pending} questions; retry shortly",
                           headers={"Retry-After": "1"})
        self.pending += 1
        if self.metrics is not None:
            self.metrics.pending.set(self.pending)

    def release(self) -> None:
        self.pending -= 1
        if self.metrics is not None:
            self.metrics.pending.set(self.pending)

    async def run(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` on the worker pool (at most ``threads`` at once), off the event loop."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def run_llm(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` when it waits on an LLM endpoint: on threads of its own (at most
        QA_LLM_CONCURRENCY), so a slow endpoint never holds the CPU workers that /ask needs."""
        if self._llm_limiter is None:
            self._llm_limiter = anyio.CapacityLimiter(self.settings.llm_concurrency)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._llm_limiter)

    async def embed(self, bot: Assistant, text: str) -> None:
        """Embed a question before taking a worker thread (batched with concurrent ones)."""
        emb = bot.embedder
        if isinstance(emb, BatchingEmbedder):
            await emb.aencode(text)

    def close(self) -> None:
        """Stop the batching threads (at shutdown); a later question starts a new batcher."""
        with self._lock:
            if self._bot is not None:
                self._bot.use_query_encoder(None)
                self._closed = True
            batchers, self._batchers = self._batchers, []
        for b in batchers:
            b.close()

    # ---- one question ----------------------------------------------------------------------
    def current(self) -> Assistant | None:
        """The assistant when it can answer without loading anything, else None."""
        return self._bot if not self._closed else None

    def checked(self, req: AskRequest) -> str:
        """The question stripped, or 422 ``invalid_question`` / ``question_too_long`` (QA_MAX_QUESTION_CHARS)."""
        try:
            return check_question(req.question, self.settings.max_question_chars)
        except QuestionError as exc:
            raise APIError(422, exc.code, str(exc)) from None

    def answered(self, bot: Assistant, answer: Answer, channel: str) -> None:
        self.note_generation(answer.index.generation)
        record_answer(self.questions, bot, answer, channel)  # queued, no I/O here

    async def ask(self, bot: Assistant, req: AskRequest, channel: str = "http") -> Answer:
        """The answer to ``req`` (POST and GET /ask)."""
        question = self.checked(req)
        self.admit()
        try:
            if req.conversation_id is None and bot.writer.name != "llm":
                # a new conversation has no earlier turns: the question is searched as asked
                if req.method != "lexical":
                    await self.embed(bot, question)  # batched with concurrent questions; then a cache hit
                answer = await self.run(bot.ask, question, req.top_k, req.method, req.collection, None, True)
            else:
                turn = await self._begin(bot, question, req)
                searched = turn.resolution.searched
                if req.method != "lexical":
                    await self.embed(bot, searched)
                if bot.writer.name == "llm":  # search on the CPU workers, the LLM wait on its own threads
                    t0 = time.perf_counter()
                    hits, timings = await self.run(bot.retrieve, searched, req.top_k, req.method, req.collection)
                    answer = await self.run_llm(bot.answer, searched, hits, timings, None, t0)
                    answer = await self.run(bot.finish, turn, answer)
                else:
                    answer = await self.run(bot.complete, turn, req.top_k, req.method, req.collection)
        except QuestionError as exc:
            raise APIError(422, exc.code, str(exc)) from None
        except (sqlite3.Error, OSError) as exc:
            raise conversations_unavailable(exc) from None
        finally:
            self.release()
        self.answered(bot, answer, channel)
        return answer

    async def _begin(self, bot: Assistant, question: str, req: AskRequest):
        """The conversation turn (found or started), on a worker thread; errors as API errors."""
        try:
            return await self.run(bot.begin, question, req.conversation_id or True)
        except QuestionError as exc:
            raise APIError(422, exc.code, str(exc)) from None
        except BadConversationId as exc:
            raise APIError(422, "invalid_conversation_id", str(exc)) from None
        except (sqlite3.Error, OSError) as exc:
            raise conversations_unavailable(exc) from None

    async def stream(self, bot: Assistant, req: AskRequest, channel: str = "web") -> AsyncIterator[Step]:
        """The steps of answering ``req`` as they happen (GET /ask/stream): retrieval runs once,
        and the answer is composed from those same hits (identical to ``/ask``'s answer).

        Everything that can refuse the question (its length, QA_MAX_PENDING, the conversation
        store) happens before the first step, so a caller that awaits the first step before
        sending anything can answer those as ordinary JSON errors. The question counts as
        pending until its answer is made (or the caller stops iterating)."""
        question = self.checked(req)
        self.admit()
        try:
            turn = await self._begin(bot, question, req)
            searched = turn.resolution.searched
            yield Step("searching", searched if searched != question else None)
            t0 = time.perf_counter()
            if req.method != "lexical":
                await self.embed(bot, searched)
            hits, timings = await self.run(bot.retrieve, searched, req.top_k, req.method, req.collection)
            yield Step("composing", len(hits))
            if bot.writer.name == "llm":
                answer = None
                async for piece in self._written(bot, searched, hits, timings, t0):
                    if isinstance(piece, str):
                        yield Step("token", piece)
                    else:
                        answer = piece
            else:
                answer = await self.run(bot.answer, searched, hits, timings, None, t0)
            answer = await self.run(bot.finish, turn, answer)
        finally:
            self.release()
        self.answered(bot, answer, channel)
        yield Step("answer", answer)

    async def _written(self, bot: Assistant, question: str, hits, timings, t0: float):
        """An LLM writer's raw text pieces while it streams, then its (verified) Answer."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue()

        def on_token(piece: str) -> None:  # called on the LLM thread
            loop.call_soon_threadsafe(queue.put_nowait, piece)

        task = asyncio.ensure_future(self.run_llm(bot.answer, question, hits, timings, None, t0, on_token))
        try:
            while not task.done():
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
            while not queue.empty():  # pieces queued just before the answer was done
                yield queue.get_nowait()
        finally:
            if not task.done():
                task.cancel()
        yield task.result()
