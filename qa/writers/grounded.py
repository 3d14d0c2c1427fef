"""The LLM writer: prompt, call, verify — and the extractive answer whenever that fails.

Bounded time: the HTTP call runs on this writer's own small thread pool (``QA_LLM_CONCURRENCY``
threads), and the caller waits for it at most ``QA_LLM_TIMEOUT_S``; after that it is told to
stop and the extractive answer (milliseconds) is returned, with the reason. So a hanging
endpoint costs a question the timeout plus verification, never more, and a refused connection
costs nothing. Verification (:mod:`qa.writers.verify`) then keeps, flags or drops each sentence;
an answer with no supported sentence at all falls back too (``verification_failed``).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from qa.retrieval import Hit
from qa.writers import prompt
from qa.writers.base import AnswerWriter, EncodeFn, TokenCallback, Written
from qa.writers.openai_compat import ChatClient, Completion, LLMError
from qa.writers.verify import verify

log = logging.getLogger("qa.llm")


LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)


class LLMStats:
    """Counters a server exports as metrics (api/metrics.py reads them at scrape time)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.calls = 0
        self.fallbacks: dict[str, int] = {}
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.latency_sum = 0.0
        self.latency_buckets = [0] * len(LATENCY_BUCKETS)  # cumulative counts per upper bound
        self.sentences = 0
        self.supported = 0
        self.listeners: list = []

    def record(self, seconds: float | None, comp: Completion | None, reason: str | None,
               sentences: int = 0, supported: int = 0) -> None:
        with self._lock:
            if seconds is not None:
                self.calls += 1
                self.latency_sum += seconds
                for i, bound in enumerate(LATENCY_BUCKETS):
                    if seconds <= bound:
                        self.latency_buckets[i] += 1
            if comp is not None:
                self.prompt_tokens += comp.prompt_tokens or 0
                self.completion_tokens += comp.completion_tokens or 0
            if reason:
                self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1
            self.sentences += sentences
            self.supported += supported
        for fn in list(self.listeners):
            try:
                fn(seconds, comp, reason, sentences, supported)
            except Exception:  # metrics must never break an answer
                log.exception("LLM metrics listener failed")


class GroundedWriter(AnswerWriter):
    name = "llm"

    def __init__(self, client: ChatClient, encode: EncodeFn, fallback: AnswerWriter, settings):
        self.client = client
        self.encode = encode
        self.fallback = fallback
        self.timeout_s = settings.llm_timeout_s
        self.max_passages = settings.llm_max_passages
        self.drop_unsupported = settings.llm_drop_unsupported
        self.pool = ThreadPoolExecutor(max_workers=settings.llm_concurrency, thread_name_prefix="qa-llm")
        self.stats = LLMStats()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def write(
        self,
        question: str,
        hits: list[Hit],
        *,
        budget: int,
        usable: list[bool] | None = None,
        on_token: TokenCallback | None = None,
    ) -> Written:
        given = prompt.given_passages(hits, usable, self.max_passages)
        if not given:
            return self._fallback(question, hits, budget, usable, "no_passages", None)
        messages = prompt.build_messages(question, hits, given)
        cancel = threading.Event()
        t0 = time.monotonic()
        deadline = t0 + self.timeout_s

        def guarded(piece: str) -> None:  # no tokens reach the page after we gave up
            if on_token is not None and not cancel.is_set():
                on_token(piece)

        fut = self.pool.submit(self.client.complete, messages, guarded, cancel, deadline)
        try:
            comp = fut.result(timeout=self.timeout_s)
        except FutureTimeout:
            cancel.set()
            fut.cancel()
            return self._fallback(question, hits, budget, usable, "timeout", time.monotonic() - t0)
        except LLMError as exc:
            cancel.set()
            log.warning("LLM call failed (%s); answering extractively", exc.reason)
            return self._fallback(question, hits, budget, usable, exc.reason, time.monotonic() - t0)
        except Exception as exc:  # a bug or an odd server must not cost the user the answer
            cancel.set()
            log.exception("LLM call failed unexpectedly")
            return self._fallback(question, hits, budget, usable, f"error_{type(exc).__name__}", time.monotonic() - t0)
        seconds = time.monotonic() - t0
        comp.text = prompt.strip_reasoning(comp.text)
        if not comp.text.strip():
            return self._fallback(question, hits, budget, usable, "empty_answer", seconds, comp)
        if prompt.is_no_answer(comp.text):
            return self._fallback(question, hits, budget, usable, "llm_declined", seconds, comp)
        passages = {i + 1: hits[i].chunk.text for i in given}
        v = verify(comp.text, passages, self.encode, drop_unsupported=self.drop_unsupported)
        n_sent = v.total
        if not any(s.supported for s in v.sentences):
            return self._fallback(question, hits, budget, usable, "verification_failed", seconds, comp, n_sent)
        self.stats.record(seconds, comp, None, n_sent, sum(s.supported for s in v.sentences))
        return Written(
            text=v.text, highlights=v.highlights, writer="llm", sentences=v.sentences,
            verified_share=round(v.share, 4), llm_ms=round(seconds * 1000, 2),
        )

    def _fallback(self, question, hits, budget, usable, reason: str, seconds: float | None,
                  comp: Completion | None = None, sentences: int = 0) -> Written:
        self.stats.record(seconds, comp, reason, sentences, 0)
        w = self.fallback.write(question, hits, budget=budget, usable=usable)
        w.fallback_reason = reason
        w.llm_ms = None if seconds is None else round(seconds * 1000, 2)
        return w
