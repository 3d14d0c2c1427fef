"""Micro-batching of query embeddings: concurrent questions share one forward pass.

Embedding the question is most of the cost of ``/ask`` (a transformer forward pass; search
and answer composition take a few milliseconds). On a small CPU, one pass over 16 short
questions costs far less than 16 passes over one, so under load the server embeds questions
together: a few threads (``qa-embed-N``, ``QA_EMBED_WORKERS``, one per core by default, each
running single-threaded torch) own the model; requests queue their question and wait on a
future. A free worker takes *everything* queued (up to ``QA_EMBED_BATCH_MAX``), so a lone
request never waits for company: batching only happens when requests already overlap. ``QA_EMBED_BATCH_MS`` adds a short linger when more questions are known to be on
their way (more requests in flight than queued), to fill the batch a little more.

:class:`BatchingEmbedder` is a drop-in proxy for :class:`qa.embeddings.Embedder`: the
:class:`~qa.assistant.Assistant` keeps calling ``embedder.encode_query(text)`` (now from many
threads, blocking on the batch), and async endpoints can ``await embedder.aencode(text)``
before taking a worker thread at all. Vectors are cached (LRU) like the plain embedder's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

log = logging.getLogger("api")

CACHE_SIZE = 4096


class BatchingEmbedder:
    def __init__(
        self,
        inner,
        max_batch: int = 32,
        linger_s: float = 0.0,
        in_flight: Callable[[], int] | None = None,
        on_batch: Callable[[int], None] | None = None,
        workers: int = 1,
    ):
        self.inner = inner
        self.max_batch = max(1, max_batch)
        self.linger_s = max(0.0, linger_s)
        self._in_flight = in_flight or (lambda: 0)
        self._on_batch = on_batch
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._queue: list[tuple[str, Future]] = []
        self._waiting: dict[str, Future] = {}  # the same question asked twice at once is embedded once
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"qa-embed-{i}", daemon=True) for i in range(max(1, workers))
        ]
        for t in self._threads:
            t.start()

    # the rest of the Embedder interface (name, dim, identity, encode_passages...) is the inner one's
    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def cached(self, text: str) -> np.ndarray | None:
        with self._cache_lock:
            vec = self._cache.get(text)
            if vec is not None:
                self._cache.move_to_end(text)
            return vec

    def submit(self, text: str) -> Future:
        """A future of the normalised vector of ``text`` (a query)."""
        vec = self.cached(text)
        if vec is not None:
            fut: Future = Future()
            fut.set_result(vec)
            return fut
        with self._cond:
            if self._closed:
                raise RuntimeError("embedder closed")
            fut = self._waiting.get(text)
            if fut is None or fut.cancelled():
                fut = self._waiting[text] = Future()
                self._queue.append((text, fut))
                self._cond.notify()
            return fut

    def encode_query(self, text: str) -> np.ndarray:
        return self.submit(text).result()

    async def aencode(self, text: str) -> np.ndarray:
        """Await the vector without holding a thread."""
        fut = self.submit(text)
        if fut.done():
            return fut.result()
        # shielded: a caller that goes away (a stream whose client left) must not cancel the
        # future, which concurrent askers of the same question share
        return await asyncio.shield(asyncio.wrap_future(fut))

    def _take(self) -> list[tuple[str, Future]]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self.linger_s and self._queue and len(self._queue) < self.max_batch:
                deadline = time.monotonic() + self.linger_s
                while len(self._queue) < min(self.max_batch, self._in_flight()):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                if self._closed:
                    return
                continue
            texts = [t for t, _ in batch]
            try:
                vecs = self.inner.encode_queries(texts)
            except BaseException as exc:  # hand the error to every waiter; the thread lives on
                log.exception("query embedding failed")
                for t, f in batch:
                    self._finish(t, f, exc=exc)
                continue
            if self._on_batch is not None:
                self._on_batch(len(batch))
            with self._cache_lock:
                for t, v in zip(texts, vecs):
                    self._cache[t] = v
                    self._cache.move_to_end(t)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
            for (t, f), v in zip(batch, vecs):
                self._finish(t, f, result=v)

    def _finish(self, text: str, fut: Future, result=None, exc: BaseException | None = None) -> None:
        with self._cond:
            if self._waiting.get(text) is fut:
                del self._waiting[text]
        if not fut.set_running_or_notify_cancel():  # cancelled by its caller: nobody waits
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
