"""What every embedding runtime shares, with no dependency on any of them (a leaf module).

* :class:`Encoder`: the one thing retrieval, answers and the service need from a model:
  ``encode(texts, kind)`` -> one L2-normalised float32 row per text. ``kind`` says which
  prompt the model expects ("query" for a question, "passage" for an indexed text).
  :class:`qa.embeddings.Embedder` (sentence-transformers, ONNX Runtime, OpenVINO) satisfies it.
* :data:`DEFAULT_ALIASES` and :func:`canonical_model`: the names that mean the default model,
  resolved here and nowhere else (the index records the canonical name).
* :class:`ModelError`, raised by every runtime when a model cannot be loaded.
* :func:`token_batches`, the batching rule both the torch and the ONNX runners follow.

:mod:`qa.embeddings` and :mod:`qa.backends` both import this module and not each other's
internals, so neither needs the other to be importable first.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import numpy as np

from qa.config import DEFAULT_MODEL

EncodeKind = Literal["query", "passage"]

#: every name that means the default model (multilingual-e5-small, materialised offline)
DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, "intfloat/multilingual-e5-small", "e5-small", "default"})


def canonical_model(name: str) -> str:
    """The name an index records for ``name``: the default model's aliases are one model."""
    return DEFAULT_MODEL if name in DEFAULT_ALIASES else name


def is_default_model(name: str) -> bool:
    return name in DEFAULT_ALIASES


def same_model(a: str, b: str) -> bool:
    return canonical_model(a) == canonical_model(b)


class ModelError(RuntimeError):
    """The embedding model cannot be loaded (wrong name, offline, corrupt folder, runtime missing)."""


@runtime_checkable
class Encoder(Protocol):
    """Texts -> normalised vectors: ``encode(texts, "query" | "passage")`` of shape (len(texts), dim)."""

    name: str
    dim: int

    def encode(self, texts: list[str], kind: EncodeKind) -> np.ndarray: ...


def token_batches(lengths: np.ndarray, batch_size: int, max_tokens: int = 0) -> list[np.ndarray]:
    """Row indices of batches, longest first: at most ``batch_size`` rows and, when
    ``max_tokens`` > 0, at most ``max_tokens`` padded tokens (rows x longest row) each.

    Sorting by token count keeps padding minimal; the token cap is what bounds memory: an
    encoder's activations grow with batch x length (and attention with length squared), so
    32 passages of 512 tokens need ~8x the memory of 32 of 64 tokens.  A single row longer
    than the budget still runs, alone."""
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    i, n, cap = 0, len(order), max(1, batch_size)
    while i < n:
        width = max(1, int(lengths[order[i]]))  # the longest row of this batch comes first
        size = cap if max_tokens <= 0 else max(1, min(cap, max_tokens // width))
        batches.append(order[i : i + size])
        i += size
    return batches
