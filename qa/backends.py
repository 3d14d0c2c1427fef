"""ONNX Runtime and OpenVINO runners for an already loaded sentence-transformers model.

``QA_BACKEND=onnx|onnx-int8|openvino`` (see ``qa.embeddings.BACKENDS``).  The
sentence-transformers model is loaded as usual (tokenizer, prompts, pooling);
its transformer plus mean pooling and L2 normalisation is exported once with
``torch.onnx`` (the TorchScript exporter: no optimum, no onnxscript) into
``<cache_dir>/backends/<model>-<fingerprint>/`` and then run by:

* ``onnx``: ONNX Runtime, float32 (vectors identical to torch within 1e-6);
* ``onnx-int8``: ONNX Runtime after ``quantize_dynamic`` of the MatMuls (int8
  per-channel weights, ``reduce_range`` because CPUs without VNNI saturate
  otherwise); vectors within cosine ~0.99 of float32, see bench/ingest.py;
* ``openvino``: OpenVINO on the float32 ONNX graph.

Why not sentence-transformers' own ``backend="onnx"``: in ST 6.2 it needs
``optimum-onnx``, whose current release pins transformers 4.57 (a downgrade).

Only models whose sentence-transformers pipeline is Transformer -> mean Pooling
(-> Normalize) are exported; anything else falls back to torch with a warning.

Once a local model folder has been exported, later processes skip
sentence-transformers and torch altogether (:func:`load_lean`): the folder's JSON
files give the prompts, pooling and sequence length, the ``tokenizers`` library
reads ``tokenizer.json`` (the very file the transformers fast tokenizer wraps),
and ONNX Runtime runs the graph.  Importing sentence-transformers costs about
7 s and torch 2 s on the 2-core machine; the lean path loads in well under one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa.encoder import ModelError, token_batches

log = logging.getLogger(__name__)

#: bump when the exported files change in a way that needs a new export
EXPORT_VERSION = 1
FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"


def _pipeline_ok(model) -> str | None:
    """None when the model is Transformer + mean Pooling (+ Normalize), else why not."""
    names = [type(m).__name__ for m in model]
    if names[:2] != ["Transformer", "Pooling"] or any(n != "Normalize" for n in names[2:]):
        return f"pipeline {names} is not Transformer -> Pooling -> Normalize"
    pooling = model[1]
    mode = getattr(pooling, "pooling_mode", None) or pooling.get_pooling_mode_str()
    if mode != "mean":
        return f"pooling mode {mode!r} is not 'mean'"
    return None


def _fingerprint(path: str) -> str:
    h = hashlib.sha256(f"v{EXPORT_VERSION}\0{Path(path).resolve() if os.path.exists(path) else path}".encode())
    folder = Path(path)
    if folder.is_dir():
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def export_dir(path: str, cache_dir: Path) -> Path:
    name = Path(path).name or "model"
    return Path(cache_dir) / "backends" / f"{name}-{_fingerprint(path)}"


def _export_fp32(model, dest: Path) -> None:
    import torch

    class _Pooled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    inner = model[0].auto_model
    dtype = next(inner.parameters()).dtype
    inner = inner.float().eval()
    ids = torch.randint(5, 1000, (2, 16))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # padding in the example, so no "all ones" shortcut is traced
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Pooled(inner), (ids, mask), str(tmp),
            input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                          "sentence_embedding": {0: "batch"}},
            opset_version=17, dynamo=False,
        )
    inner.to(dtype)
    os.replace(tmp, dest)


def _quantize_int8(src: Path, dest: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dest.with_name(dest.name + f".pre-{os.getpid()}")
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    try:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_dynamic(
            str(pre), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
            per_channel=True, reduce_range=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        os.replace(tmp, dest)
    finally:
        for f in (pre, tmp):
            f.unlink(missing_ok=True)


def ensure_exported(model, path: str, cache_dir: Path, int8: bool) -> Path:
    """The ONNX file for ``model`` (exported on first use, under a file lock)."""
    from filelock import FileLock

    folder = export_dir(path, cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (INT8_FILE if int8 else FP32_FILE)
    if target.exists():
        return target
    with FileLock(str(folder / ".lock")):
        fp32 = folder / FP32_FILE
        if not fp32.exists():
            log.warning("exporting %s to ONNX (once) into %s", path, folder)
            _export_fp32(model, fp32)
        if int8 and not target.exists():
            log.warning("quantising %s to int8 (once)", fp32)
            _quantize_int8(fp32, target)
    return target


Tokenize = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


def hf_tokenizer(model) -> Tokenize:
    """The sentence-transformers model's own (transformers) tokenizer, padded and truncated."""
    tok = model.tokenizer
    max_length = int(getattr(model, "max_seq_length", None) or 512)

    def tokenize(batch: list[str]) -> tuple[np.ndarray, np.ndarray]:
        t = tok(batch, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        return t["input_ids"].astype(np.int64), t["attention_mask"].astype(np.int64)

    return tokenize


class Runner:
    """Tokenise, run the exported graph, return the vectors in the callers' order."""

    def __init__(self, tokenize: Tokenize, prompts: dict[str, str], run, backend: str):
        self.tokenize = tokenize
        self.prompts = dict(prompts or {})
        self._run = run
        self.backend = backend

    def encode(self, texts: list[str], prompt_name: str | None, batch_size: int, max_tokens: int = 0) -> np.ndarray:
        """Vectors in the callers' order (see ``iter_encode``)."""
        out = None
        for rows, vecs in self.iter_encode(texts, prompt_name, batch_size, max_tokens):
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[rows] = vecs
        return np.ascontiguousarray(out) if out is not None else np.zeros((0, 0), dtype=np.float32)

    def iter_encode(self, texts: list[str], prompt_name: str | None, batch_size: int, max_tokens: int = 0):
        """Yield ``(indices, vectors)`` per batch.  Texts are tokenised once per slice of 256,
        sorted by token count and run in batches of at most ``batch_size`` texts *and*
        ``max_tokens`` padded tokens, so a batch of long passages stays small: activation
        memory grows with batch x length (attention with length squared)."""
        prefix = self.prompts.get(prompt_name, "") if prompt_name else ""
        step = 256  # tokenise in slices, so a long list never holds one giant padded matrix
        for w in range(0, len(texts), step):
            ids, mask = self.tokenize([prefix + t for t in texts[w : w + step]])
            lengths = mask.sum(1)
            left = not mask[:, 0].all()  # a tokenizer that pads on the left keeps tokens at the end
            for rows in token_batches(lengths, batch_size, max_tokens):
                width = int(lengths[rows].max())
                cols = slice(ids.shape[1] - width, None) if left else slice(0, width)
                vecs = self._run(np.ascontiguousarray(ids[rows, cols]), np.ascontiguousarray(mask[rows, cols]))
                yield w + rows, np.asarray(vecs, dtype=np.float32)


def load_runner(model, path: str, backend: str, settings, threads: int) -> Runner | None:
    """A Runner for ``backend`` from a loaded SentenceTransformer ``model``, or None (torch)
    when the model cannot be exported."""
    why = _pipeline_ok(model)
    if why:
        log.warning("QA_BACKEND=%s not available for %s (%s): using torch", backend, path, why)
        return None
    try:
        if backend in ("onnx", "onnx-int8"):
            import onnxruntime  # noqa: F401  (only to give a clear error when missing)
        else:
            import openvino as ov
    except ImportError as exc:
        raise ModelError(
            f"QA_BACKEND={backend} needs {'onnxruntime' if backend.startswith('onnx') else 'openvino'} "
            f"installed ({exc}); or set QA_BACKEND=torch"
        ) from exc
    onnx_file = ensure_exported(model, path, settings.cache_dir, int8=backend == "onnx-int8")
    if backend in ("onnx", "onnx-int8"):
        session = _ort_session(
            onnx_file, threads, bool(getattr(settings, "onnx_spin", False)), bool(getattr(settings, "onnx_arena", True))
        )

        def run(ids, mask):
            return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    else:
        core = ov.Core()
        compiled = core.compile_model(
            str(onnx_file), "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        )
        request = compiled.create_infer_request()
        import threading

        lock = threading.Lock()

        def run(ids, mask):
            with lock:  # one infer request: serialise callers
                return np.array(request.infer({"input_ids": ids, "attention_mask": mask})[0], copy=True)
    return Runner(hf_tokenizer(model), getattr(model, "prompts", {}), run, backend)


# ---- the lean path: no torch, no sentence-transformers ----------------------------------------

_OTHER_POOLING = ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                  "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")


@dataclass
class FolderConfig:
    """What running a Transformer -> mean Pooling (-> Normalize) folder needs."""

    tokenizer_file: Path
    dim: int
    max_length: int
    lowercase: bool
    pad_token: str
    prompts: dict[str, str] = field(default_factory=dict)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def read_folder(path: str) -> FolderConfig | None:
    """The folder's pipeline from its JSON files, or None when it is not one the lean path runs."""
    folder = Path(path)
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
            return None
        base = folder / modules[0].get("path", "")
        pooling = _read_json(folder / modules[1]["path"] / "config.json")
        if not pooling.get("pooling_mode_mean_tokens") or any(pooling.get(k) for k in _OTHER_POOLING):
            return None
        if pooling.get("include_prompt") is False:
            return None  # the exported graph pools over the prompt tokens too
        sbert = _read_json(base / "sentence_bert_config.json") or _read_json(folder / "sentence_bert_config.json")
        tok_cfg = _read_json(base / "tokenizer_config.json")
        st_cfg = _read_json(folder / "config_sentence_transformers.json")
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    tokenizer_file = base / "tokenizer.json"
    if not tokenizer_file.exists():
        return None
    max_length = int(sbert.get("max_seq_length") or 512)
    model_max = tok_cfg.get("model_max_length")
    if isinstance(model_max, int) and 0 < model_max < max_length:
        max_length = model_max
    pad = tok_cfg.get("pad_token") or "<pad>"
    if isinstance(pad, dict):
        pad = pad.get("content", "<pad>")
    return FolderConfig(
        tokenizer_file=tokenizer_file,
        dim=int(pooling["word_embedding_dimension"]),
        max_length=max_length,
        lowercase=bool(sbert.get("do_lower_case", False)),
        pad_token=str(pad),
        prompts=dict(st_cfg.get("prompts") or {}),
    )


def file_tokenizer(cfg: FolderConfig) -> Tokenize:
    """The ``tokenizers`` library on the folder's tokenizer.json: what the transformers fast
    tokenizer wraps, without importing transformers."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(cfg.tokenizer_file))
    tok.enable_truncation(max_length=cfg.max_length)
    pad_id = tok.token_to_id(cfg.pad_token)
    tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=cfg.pad_token)

    def tokenize(batch: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if cfg.lowercase:
            batch = [t.lower() for t in batch]
        enc = tok.encode_batch(batch)
        return (np.array([e.ids for e in enc], dtype=np.int64),
                np.array([e.attention_mask for e in enc], dtype=np.int64))

    return tokenize


class LeanRunner(Runner):
    """A Runner loaded from the folder's files alone (no torch, no sentence-transformers)."""

    def __init__(self, cfg: FolderConfig, run, backend: str):
        super().__init__(file_tokenizer(cfg), cfg.prompts, run, backend)
        self.dim = cfg.dim


_SHARED_ARENA: bool | None = None


def _shared_arena(ort) -> bool:
    """One CPU arena for every session of the process that grows by exactly what a run asks
    for (kSameAsRequested), not by the next power of two as ONNX Runtime's default does, so
    its size follows the largest batch instead of up to twice that; registered once."""
    global _SHARED_ARENA
    if _SHARED_ARENA is None:
        try:
            cfg = ort.OrtArenaCfg(0, 1, -1, -1)  # no cap, kSameAsRequested, default chunk sizes
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, cfg)
            _SHARED_ARENA = True
        except Exception as exc:  # an older ONNX Runtime: its default arena
            log.debug("no shared ONNX Runtime arena: %s", exc)
            _SHARED_ARENA = False
    return _SHARED_ARENA


def _ort_session(onnx_file: Path, threads: int, spin: bool = False, arena: bool = True):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # Memory: the token budget per batch (qa.encoder.token_batches) bounds what one run
    # needs; the arena then grows by exactly that (_shared_arena).  Without an arena
    # (QA_ONNX_ARENA=false) buffers go back to malloc after each run, which measured about
    # half as fast here for no lower peak (bench/results/ingest_product.json).
    opts.enable_cpu_mem_arena = arena
    opts.enable_mem_pattern = arena
    if arena and _shared_arena(ort):
        opts.add_session_config_entry("session.use_env_allocators", "1")
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # Spinning keeps idle threads hot between calls: good for one lone caller, but under
    # concurrent requests it burns the cores that other questions need (bench/load.py:
    # 16 clients 51 -> 59 QPS without it, one client ~5 ms slower).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])


def load_lean(
    path: str, cache_dir: Path, backend: str, threads: int, spin: bool = False, arena: bool = True
) -> LeanRunner | None:
    """An ONNX Runtime runner for an already exported local folder, or None (load it the slow way)."""
    if backend not in ("onnx", "onnx-int8") or not Path(path).is_dir():
        return None
    cfg = read_folder(path)
    if cfg is None:
        return None
    onnx_file = export_dir(path, cache_dir) / (INT8_FILE if backend == "onnx-int8" else FP32_FILE)
    if not onnx_file.exists():
        return None
    try:
        session = _ort_session(onnx_file, threads, spin, arena)
    except ImportError:
        return None
    except Exception as exc:  # a truncated export, say: the slow path exports it again
        log.warning("cannot load %s (%s): exporting again", onnx_file, exc)
        onnx_file.unlink(missing_ok=True)
        return None

    def run(ids, mask):
        return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

    return LeanRunner(cfg, run, backend)
