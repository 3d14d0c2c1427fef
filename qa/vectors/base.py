"""The read side of a served index, as retrieval and the service use it.

A store answers the two first-stage searches (dense vectors, BM25 over our lexical
tokens) with the collection filter applied *inside* the search, so a filtered question
gets the true top k of its collection instead of the survivors of an over-fetch; then
it hands back the few passages worth reading.  Generations are immutable: one object
serves one generation, ``is_stale`` says when a newer one was published.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from qa.store import ChunkRow, IndexMismatch


class StoreUnavailable(RuntimeError):
    """The store cannot be reached (or did not answer in time); the message says which and why.

    The service answers 503 with this message; nothing is retried forever."""


class StoreSchemaError(IndexMismatch):
    """The store holds a collection this code cannot serve correctly (missing analyzer,
    BM25 function, fields, or another lexical encoding): refusing beats silent zero hits."""


@runtime_checkable
class VectorIndex(Protocol):
    generation: str  # "gen-000042": the number only grows
    n_chunks: int
    n_docs: int
    opened_at: float

    @property
    def model(self) -> str: ...

    @property
    def model_identity(self) -> str: ...

    def dense(self, qvec: np.ndarray, k: int, collection: str | None = None) -> list[tuple[int, float]]:
        """Best ``k`` passages by cosine (vectors are normalised), best first."""

    def lexical(self, tokens: Sequence[str], k: int, collection: str | None = None) -> list[tuple[int, float]]:
        """Best ``k`` passages by BM25 over ``qa.lexical`` tokens (any of them may match)."""

    def chunks(self, ids: list[int]) -> dict[int, ChunkRow]: ...

    def stub_ids(self) -> list[int]:
        """Passages that are stubs (a heading over "待补充"): few, read once per generation, so a
        question about an unwritten section is told so even when retrieval ranks it low."""

    def documents(self) -> list[dict]: ...

    def info(self) -> dict: ...

    def size_bytes(self) -> int: ...

    def is_stale(self) -> bool: ...

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` when the store does not answer (readiness)."""
