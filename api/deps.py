"""Typed dependencies: settings and the shared Assistant (opened lazily, reopened when built).

The :class:`AssistantHolder` owns everything a question needs that is costly to make, so a
request never loads anything: the index and model are opened once (in the background at
start-up, so ``/healthz`` answers at once and ``/readyz`` turns 200 when the model is warm),
the query embedder is wrapped for micro-batching (:mod:`api.batching`), and CPU work runs on
a thread pool sized to the machine (:meth:`AssistantHolder.run`), never on the event loop.
The Assistant itself follows ``qa ingest``: a newly published generation is picked up by the
next question, while questions in flight finish on the old one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Annotated, Callable, Literal, TypeVar

import anyio
from fastapi import Depends, Query, Request
from pydantic import BeforeValidator

from api.batching import BatchingEmbedder
from api.errors import APIError
from api.schemas import CONVERSATION_ID_PATTERN, AskRequest
from qa.assistant import Assistant
from qa.config import Settings
from qa.store import IndexMismatch, IndexNotFound, generation_number
from qa.vectors.base import StoreUnavailable

log = logging.getLogger("api")
T = TypeVar("T")


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
    """Opens the index on first use so the server can start before `qa ingest` has run."""

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

    # ---- the assistant ---------------------------------------------------------------------
    def get(self) -> Assistant:
        bot = self._bot
        if bot is not None:
            self._wrap(bot)
            return bot
        with self._lock:
            if self._bot is None:
                try:
                    bot = Assistant.open(settings=self.settings)
                except IndexNotFound as exc:
                    self.error = str(exc)
                    raise APIError(503, "index_missing", str(exc)) from None
                except IndexMismatch as exc:
                    self.error = str(exc)
                    raise APIError(503, "index_mismatch", str(exc)) from None
                except StoreUnavailable as exc:
                    self.error = str(exc)
                    raise APIError(503, "store_unavailable", str(exc), headers={"Retry-After": "5"}) from None
                self._wrap(bot)
                self.generation = bot.reader.generation
                self._bot = bot
                self.error = None
        return self._bot

    def _wrap(self, bot: Assistant) -> None:
        """Route the assistant's query embeddings through the batcher (again after a model change)."""
        emb = bot.embedder
        if isinstance(emb, BatchingEmbedder) or getattr(emb, "_qa_unbatched", False):
            return
        with self._lock:
            if isinstance(bot.embedder, BatchingEmbedder) or getattr(emb, "_qa_unbatched", False):
                return
            workers = self.settings.embed_workers or cores()
            # questions are embedded concurrently (by the workers, or by the request threads when
            # batching is off): one torch thread each, unless the workers are fewer than the cores.
            # Intra-op threads of one short query buy little, and on a busy machine OpenMP threads
            # spinning for a core make one query take seconds (measured: 2.2 s with 2 threads vs
            # 80 ms with 1 under load).
            emb.set_threads(max(1, (self.settings.threads or cores()) // workers))
            if self.settings.embed_batch_max <= 1:
                emb._qa_unbatched = True
                return
            on_batch = self.metrics.batch.observe if self.metrics is not None else None
            bot.embedder = BatchingEmbedder(
                emb, self.settings.embed_batch_max, self.settings.embed_batch_ms / 1000,
                in_flight=lambda: self.pending, on_batch=on_batch, workers=workers,
            )

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
        """Stop the batching thread (at shutdown); a later question starts a new one."""
        bot = self._bot
        with self._lock:
            emb = bot.embedder if bot is not None else None
            if isinstance(emb, BatchingEmbedder):
                bot.embedder = emb.inner
                emb.close()


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_holder(request: Request) -> AssistantHolder:
    return request.app.state.holder


async def get_assistant(request: Request) -> Assistant:
    """The loaded assistant; loads it on a worker thread (never the event loop) when not yet loaded."""
    holder: AssistantHolder = request.app.state.holder
    bot = holder.loaded
    if bot is not None:
        holder._wrap(bot)
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
    q: Annotated[str, Query(min_length=1, max_length=2000, description="The question.")],
    top_k: Annotated[int, Query(ge=1, le=50, description="How many passages to cite."), BeforeValidator(_digits)] = 5,
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
        return AskRequest(question=q, top_k=top_k, collection=collection, method=method, conversation_id=conversation_id or None)
    except ValueError as exc:
        raise APIError(422, "invalid_question", "question is empty or only whitespace") from exc


AskQueryDep = Annotated[AskRequest, Depends(ask_query)]


def check_length(req: AskRequest, settings: Settings) -> None:
    """QA_MAX_QUESTION_CHARS may be stricter than the schema's 2000-character cap."""
    if len(req.question) > settings.max_question_chars:
        raise APIError(
            422, "question_too_long",
            f"question is {len(req.question)} characters long; the limit is {settings.max_question_chars}",
        )
