"""Bad input at the ingest level: every odd file gets a clear line in the report and nothing
else is lost (real model, FAISS, SQLite; no monkeypatching of our own code).

What the loader does file by file is in tests/test_documents.py; here the same cases go
through ``qa.ingest`` into a published index, plus what only shows up there: a race with
files deleted and rewritten during the run, a full disk, an index path that cannot exist.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from qa.check import check_index
from qa.chunks import ChunkerConfig, chunk_document
from qa.documents import MAX_BYTES, load_document
from qa.ingest import IndexWriteError, ingest
from qa.store import DB_NAME, current_generation
from tests.conftest import FIXTURES, make_settings

pytestmark = [pytest.mark.model]

GOOD = "---\ntitle: 正常文章\n---\n\n# 正常文章\n\n这篇文章一切正常，用来确认坏文件不会影响其他文件的收录。\n"


def _rows(index: Path, sql: str, args=()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{index / current_generation(index) / DB_NAME}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _texts(index: Path, path: str) -> str:
    return "\n".join(
        r[0] for r in _rows(index, "SELECT c.text FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path=?", (path,))
    )


# --------------------------------------------------------------------------- one run over a corpus of bad files

ENCODED = {
    # name: (bytes, encoding the index must record, a phrase that must come out intact)
    "enc/gbk.md": ("# 字符集\n\n这是一篇 GBK 编码的文章，讲的是字符集转换。\n".encode("gbk"), "gb18030", "字符集转换"),
    "enc/gb18030.md": ("# 生僻字\n\n扩展汉字𠀀𪚥也要保留，编码为 GB18030。\n".encode("gb18030"), "gb18030", "𠀀𪚥"),
    "enc/utf16le-bom.md": ("# 小端\n\nUTF-16 小端带字节序标记的文章。\n".encode("utf-16"), "utf-16", "小端带字节序标记"),
    "enc/utf16be-bom.md": (b"\xfe\xff" + "# 大端\n\nUTF-16 大端带字节序标记的文章。\n".encode("utf-16-be"), "utf-16", "大端带字节序标记"),
    "enc/utf16-nobom.md": ("# 无标记\n\nUTF-16 without a BOM 也能识别。\n".encode("utf-16-le"), "utf-16", "without a BOM"),
    "enc/utf8-bom.md": (b"\xef\xbb\xbf" + "---\ntitle: 带 BOM\n---\n\nUTF-8 BOM 不应破坏前置元数据。\n".encode(), "utf-8-sig", "不应破坏前置元数据"),
}

NESTED = "# 嵌套\n\n" + "\n".join("  " * i + f"- 第{i}层" for i in range(120)) + "\n\n" + "> " * 300 + "很深的引用也能收录。\n"
HTML_ONLY = (
    "<!DOCTYPE html>\n<html><head><title>页面</title><style>p { color: red }</style>"
    "<script>var x = 1;</script></head>\n<body><div class=\"c\"><p>只有 HTML 的页面内容也要能被检索到。</p>"
    "<ul><li>列表项</li></ul></div></body></html>\n"
)
LONG_CODE = "# 超长行\n\n```\n" + "x" * 15_000 + "\n```\n"
LONG_SENTENCE = "# 超长句\n\n" + "汉字" * 3_500 + "\n"  # 7,000 characters, no punctuation at all


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    base = tmp_path_factory.mktemp("edge")
    corpus, outside, index = base / "corpus", base / "outside", base / "index"
    corpus.mkdir()
    outside.mkdir()
    (outside / "secret.md").write_text("# 外部\n\n语料目录之外的秘密文件。\n", encoding="utf-8")

    def put(rel: str, data: str | bytes) -> None:
        p = corpus / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    put("good.md", GOOD)
    put("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    for rel, (data, _, _) in ENCODED.items():
        put(rel, data)
    put("empty.md", b"")
    put("blank.md", "\n\n   \n")
    put("fm-only.md", "---\ntitle: 只有元数据\n---\n")
    put("fm-broken.md", "---\ntitle: 坏掉的\ntags: [a, b\n  : : :\n---\n\n坏掉的前置元数据后面的正文仍要保留。\n")
    put("fm-unclosed.md", "---\ntitle: 没有结尾\n\n没有结尾的前置元数据之后的正文。\n")
    put("nested.md", NESTED)
    put("html-only.md", HTML_ONLY)
    put("long-code.md", LONG_CODE)
    put("long-sentence.md", LONG_SENTENCE)
    put("空 格 🚀 文章.md", "# 名字\n\n文件名里有空格、中文和表情符号。\n")
    put("中文目录/子 文件.md", "# 子目录\n\n中文目录里的文件。\n")
    put("folder.md/inner.md", "# 内层\n\n名为 folder.md 的目录里面的文章。\n")
    with open(corpus / "huge.md", "wb") as fh:  # sparse: over the loader's limit without writing 20 MB
        fh.truncate(MAX_BYTES + 1)
    os.mkfifo(corpus / "pipe.md")  # reading it would block forever
    (corpus / "loop").symlink_to(corpus, target_is_directory=True)
    (corpus / "escape.md").symlink_to(outside / "secret.md")
    (corpus / "escape-dir").symlink_to(outside, target_is_directory=True)

    t = time.perf_counter()
    report = ingest(corpus, make_settings(index))
    return corpus, index, report, time.perf_counter() - t


def _skip_reason(report, path: str) -> str:
    reasons = {s["path"]: s["reason"] for s in report.skipped}
    assert path in reasons, (path, reasons)
    return reasons[path]


def _warning(report, path: str) -> str:
    found = [w["warning"] for w in report.warnings if w["path"] == path]
    assert found, (path, report.warnings)
    return " | ".join(found)


def test_nothing_good_is_lost_and_the_index_is_consistent(edge):
    corpus, index, report, _ = edge
    result = check_index(index)
    assert result["ok"], result["problems"]
    indexed = {r[0] for r in _rows(index, "SELECT path FROM documents")}
    expected = {
        "good.md", *ENCODED, "empty.md", "blank.md", "fm-only.md", "fm-broken.md", "fm-unclosed.md", "nested.md",
        "html-only.md", "long-code.md", "long-sentence.md", "空 格 🚀 文章.md", "中文目录/子 文件.md", "folder.md/inner.md",
    }
    assert indexed == expected
    assert set(report.added) == expected
    assert "一切正常" in _texts(index, "good.md")
    # every file is accounted for: indexed, or skipped with a reason
    assert {s["path"] for s in report.skipped} == {"binary.md", "huge.md", "loop", "escape.md", "escape-dir", "pipe.md"}


def test_binary_renamed_md(edge):
    assert _skip_reason(edge[2], "binary.md") == "binary file"


@pytest.mark.parametrize("rel", list(ENCODED))
def test_encodings_are_decoded_and_recorded(edge, rel):
    _, index, _, _ = edge
    _, encoding, phrase = ENCODED[rel]
    assert _rows(index, "SELECT encoding FROM documents WHERE path=?", (rel,)) == [(encoding,)]
    assert phrase in _texts(index, rel)


def test_bom_does_not_hide_front_matter(edge):
    _, index, _, _ = edge
    assert _rows(index, "SELECT title FROM documents WHERE path='enc/utf8-bom.md'") == [("带 BOM",)]


@pytest.mark.parametrize("rel", ["empty.md", "blank.md", "fm-only.md"])
def test_empty_files_are_reported(edge, rel):
    _, index, report, _ = edge
    assert _warning(report, rel) == "no text to index (empty after cleaning)"
    assert _rows(index, "SELECT n_chunks FROM documents WHERE path=?", (rel,)) == [(0,)]


def test_broken_and_unclosed_front_matter_keep_the_body(edge):
    _, index, report, _ = edge
    assert "malformed YAML front matter" in _warning(report, "fm-broken.md")
    assert "正文仍要保留" in _texts(index, "fm-broken.md")
    assert _rows(index, "SELECT title FROM documents WHERE path='fm-broken.md'") == [("坏掉的",)]
    assert "unclosed front matter" in _warning(report, "fm-unclosed.md")
    assert "之后的正文" in _texts(index, "fm-unclosed.md")


def test_file_over_the_size_limit_is_skipped_fast(edge):
    _, _, report, seconds = edge
    assert _skip_reason(report, "huge.md") == f"file too large ({MAX_BYTES + 1} bytes > {MAX_BYTES})"


def test_over_long_lines_are_cut_at_the_hard_limit(edge):
    _, index, report, _ = edge
    hard = ChunkerConfig().hard_limit
    lengths = [r[0] for r in _rows(index, "SELECT length(text) FROM chunks")]
    assert max(lengths) <= hard
    # 11, not 10: each piece is re-fenced (```...```), and the fence lines count against the limit
    assert "cut into 11 pieces at the hard limit of 1500" in _warning(report, "long-code.md")
    code = _rows(index, "SELECT c.start, c.end FROM chunks c JOIN documents d ON d.id=c.doc_id "
                        "WHERE d.path='long-code.md' ORDER BY c.ord")
    assert sum(b - a for a, b in code) >= 15_000  # nothing dropped: the pieces cover the whole line
    sentence = _rows(index, "SELECT length(c.text) FROM chunks c JOIN documents d ON d.id=c.doc_id "
                            "WHERE d.path='long-sentence.md'")
    size = ChunkerConfig().size  # one endless sentence is cut into passages of at most the target size
    assert max(r[0] for r in sentence) <= size and sum(r[0] for r in sentence) >= len(LONG_SENTENCE.strip()) - 10
    assert len(sentence) >= len(LONG_SENTENCE.strip()) // size


def test_megabyte_single_line_chunks_quickly_with_hard_cuts(tmp_path):
    """Below the 20 MiB limit a one-line file is parsed and cut, not hung on (loader + chunker only)."""
    p = tmp_path / "one-line.md"
    p.write_text("汉字" * 150_000 + "。", encoding="utf-8")  # 900 KB, one line, one sentence
    doc = load_document(p, tmp_path)
    chunks = chunk_document(doc, ChunkerConfig())
    assert max(len(c.text) for c in chunks) <= ChunkerConfig().size
    assert sum(len(c.text) for c in chunks) >= 300_000
    assert all(c.line_start == 1 for c in chunks)


def test_deeply_nested_lists_and_quotes(edge):
    text = _texts(edge[1], "nested.md")
    assert "第0层" in text and "第119层" in text and "很深的引用也能收录" in text


def test_html_only_page_keeps_its_text(edge):
    text = _texts(edge[1], "html-only.md")
    assert "只有 HTML 的页面内容也要能被检索到" in text
    assert "var x" not in text and "color: red" not in text


def test_odd_names_and_folders(edge):
    _, index, _, _ = edge
    assert "表情符号" in _texts(index, "空 格 🚀 文章.md")
    assert "中文目录里的文件" in _texts(index, "中文目录/子 文件.md")
    assert "目录里面的文章" in _texts(index, "folder.md/inner.md")  # a folder named x.md is a folder


def test_fifo_named_md_is_not_read(edge):
    """A FIFO would block a reader forever: it is not a regular file, so it is never opened
    (the run above finished); it is reported as skipped, like anything that is not indexed."""
    _, index, report, _ = edge
    assert not _rows(index, "SELECT 1 FROM documents WHERE path='pipe.md'")
    assert "pipe.md" not in report.added
    assert _skip_reason(report, "pipe.md") == "not a regular file"


def test_symlinks_are_not_followed_by_default(edge):
    _, index, report, _ = edge
    for name in ("loop", "escape.md", "escape-dir"):
        assert _skip_reason(report, name) == "symlink not followed"
    assert not _rows(index, "SELECT 1 FROM chunks WHERE text LIKE '%秘密文件%'")


def test_followed_symlinks_stop_at_loops_and_the_corpus_root(tmp_path):
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    (corpus / "sub").mkdir(parents=True)
    outside.mkdir()
    (corpus / "sub" / "a.md").write_text(GOOD, encoding="utf-8")
    (outside / "secret.md").write_text("# 外部\n\n语料目录之外的秘密文件。\n", encoding="utf-8")
    (corpus / "sub" / "up").symlink_to(corpus, target_is_directory=True)
    (corpus / "inside.md").symlink_to(corpus / "sub" / "a.md")
    (corpus / "escape.md").symlink_to(outside / "secret.md")
    index = tmp_path / "index"
    report = ingest(corpus, make_settings(index), follow_symlinks=True)
    reasons = {s["path"]: s["reason"] for s in report.skipped}
    assert reasons == {
        "sub/up": "symlink loop (points at a parent folder)",
        "escape.md": "symlink target outside the corpus root",
    }
    assert sorted(report.added) == ["inside.md", "sub/a.md"]
    assert check_index(index)["ok"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads chmod 000 files; see test_documents' simulated variant")
def test_permission_denied_file_is_reported(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.md").write_text(GOOD, encoding="utf-8")
    locked = corpus / "locked.md"
    locked.write_text(GOOD, encoding="utf-8")
    locked.chmod(0)
    try:
        report = ingest(corpus, make_settings(tmp_path / "index"))
    finally:
        locked.chmod(0o644)
    assert "Permission denied" in _skip_reason(report, "locked.md")
    assert report.added == ["good.md"]


# --------------------------------------------------------------------------- files that change during the run

RACE_A = "---\ntitle: 竞争\n---\n\n# 竞争\n\n在收录过程中被删除或改写的文件。\n"
RACE_B = "---\ntitle: 竞争\n---\n\n# 竞争\n\n这个文件在收录过程中被改写了。\n"


def test_files_deleted_and_rewritten_during_the_run(tmp_path):
    """A real race: a thread deletes, recreates and rewrites files while ingest runs.

    The two contents embed to two vectors, so 300 files cost two embeddings."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    names = [f"d{i // 50}/f{i:03d}.md" for i in range(300)]
    for n in names:
        (corpus / n).parent.mkdir(parents=True, exist_ok=True)
        (corpus / n).write_text(RACE_A, encoding="utf-8")
    settings = make_settings(index)
    assert ingest(corpus, settings).published  # warms the model and both vectors' cache
    (corpus / names[0]).write_text(RACE_B, encoding="utf-8")
    ingest(corpus, settings)

    stop = threading.Event()
    touched = {"deleted": 0, "rewritten": 0}

    def churn() -> None:
        rnd = random.Random(7)
        while not stop.is_set():
            p = corpus / rnd.choice(names)
            try:
                if rnd.random() < 0.5:
                    p.unlink()
                    touched["deleted"] += 1
                    time.sleep(0.0005)
                    p.write_text(RACE_A, encoding="utf-8")  # reappears: the next run must see it
                else:
                    p.write_text(rnd.choice((RACE_A, RACE_B)), encoding="utf-8")
                    touched["rewritten"] += 1
            except OSError:
                pass

    th = threading.Thread(target=churn, daemon=True)
    th.start()
    reports = []
    try:
        for _ in range(4):
            reports.append(ingest(corpus, settings))
            result = check_index(index)
            assert result["ok"], result["problems"]
    finally:
        stop.set()
        th.join(10)
    assert touched["deleted"] > 10 and touched["rewritten"] > 10
    for r in reports:  # a file caught mid-change is either read whole or skipped with a reason
        assert all(s["reason"].startswith(("cannot read", "file vanished")) for s in r.skipped), r.skipped
        assert r.unchanged + len(r.added) + len(r.changed) + len(r.skipped) == r.files_seen
    final = ingest(corpus, settings)  # quiet now: the index must match the disk exactly
    assert not final.skipped
    rows = dict(_rows(index, "SELECT path, content_hash FROM documents"))
    assert set(rows) == set(names)
    for n in names:
        assert rows[n] == hashlib.sha256((corpus / n).read_bytes()).hexdigest(), n
    assert check_index(index)["ok"]


# --------------------------------------------------------------------------- unwritable index


def test_index_path_under_a_regular_file_is_a_clear_error(tmp_path, corpus_dir):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(IndexWriteError, match="cannot create the index folder .*not-a-folder/index: Not a directory"):
        ingest(corpus_dir, make_settings(blocker / "index"))


@pytest.fixture()
def small_disk(tmp_path):
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_during_publish_keeps_the_served_index(small_disk, tmp_path):
    corpus, index = tmp_path / "corpus", small_disk / "index"
    shutil.copytree(FIXTURES / "corpus", corpus)
    settings = make_settings(index)
    assert ingest(corpus, settings).published
    served = current_generation(index)
    # fill the disk, leaving less room than one more generation needs
    st = os.statvfs(small_disk)
    with open(small_disk / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 16 * 1024))
    (corpus / "new.md").write_text(GOOD, encoding="utf-8")
    with pytest.raises(IndexWriteError) as info:
        ingest(corpus, settings)
    msg = str(info.value)
    assert "cannot write the new index generation" in msg and f"the served generation {served} is untouched" in msg
    assert "full" in msg
    assert current_generation(index) == served
    result = check_index(index)
    assert result["ok"] and not result["leftover_temp"], result
    assert result["counts"]["documents"] == 4
    # room again: the next run publishes
    (small_disk / "filler").unlink()
    report = ingest(corpus, settings)
    assert report.published and report.added == ["new.md"]
    assert check_index(index)["ok"]


# --------------------------------------------------------------------------- embedding backends

BACKEND_TEXTS = [
    "Kubernetes 是一个开源的容器编排系统，用于自动化部署、扩缩和管理容器化应用。",
    "Helm 是 Kubernetes 的包管理器，用 Chart 描述一组资源。",
    "缓存",
    "TiDB Operator manages TiDB clusters on Kubernetes; 它负责部署、升级和扩缩容。" * 3,
]


@pytest.fixture(scope="module")
def torch_ref():
    from qa.config import Settings
    from qa.embeddings import Embedder

    saved = os.environ.pop("QA_BACKEND", None)
    os.environ["QA_BACKEND"] = "torch"
    try:
        ref = Embedder("default", Settings(precision="float32"))
    finally:
        os.environ.pop("QA_BACKEND", None)
        if saved is not None:
            os.environ["QA_BACKEND"] = saved
    assert ref.backend == "torch"
    return ref


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8", "openvino"])
def test_backend_vectors_match_torch(backend, torch_ref, monkeypatch):
    """Each QA_BACKEND gives vectors within cosine 0.99 of sentence-transformers/torch float32
    (queries and passages, with their prompts). The export is cached in QA_CACHE_DIR."""
    pytest.importorskip("onnxruntime" if backend.startswith("onnx") else "openvino")
    from qa.config import Settings
    from qa.embeddings import Embedder

    ref = torch_ref
    monkeypatch.setenv("QA_BACKEND", backend)  # the setting, not our code, is what changes
    emb = Embedder("default", Settings(precision="float32"))
    assert emb.backend == backend and emb.identity == ref.identity
    p = (emb.encode_passages(BACKEND_TEXTS) * ref.encode_passages(BACKEND_TEXTS)).sum(1)
    q = (emb.encode_queries(BACKEND_TEXTS) * ref.encode_queries(BACKEND_TEXTS)).sum(1)
    assert p.min() >= 0.99 and q.min() >= 0.99, (p, q)
    if backend != "onnx-int8":  # the float32 graphs are the same vectors, not approximations (int8: ~0.99);
        # float32 kernels sum in a CPU-dependent order (AVX2 vs AVX-512): 1 - cos reaches 1e-5 on some CPUs
        assert p.min() >= 0.9999 and q.min() >= 0.9999, (p, q)
    assert emb.vector_identity == ref.identity + (":int8" if backend == "onnx-int8" else "")


LEAN_PROBE = r"""
import json, sys
from qa.config import Settings
from qa.embeddings import Embedder
emb = Embedder("default", Settings(precision="float32"))
texts = json.loads(sys.argv[1])
ids, mask = emb._runner.tokenize(["passage: " + t for t in texts])
print(json.dumps({
    "runner": type(emb._runner).__name__,
    "heavy_imports": sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules),
    "ids": [[int(i) for i, m in zip(row, keep) if m] for row, keep in zip(ids, mask)],
    "passages": emb.encode_passages(texts).tolist(),
    "queries": emb.encode_queries(texts).tolist(),
}))
"""


def test_default_backend_starts_lean_once_exported(torch_ref):
    """With the default ONNX backend, a process that finds the exported graph loads neither torch nor
    sentence-transformers (that is what makes a server start in seconds), and still produces the very
    token ids of the transformers tokenizer and the float32 vectors of torch, long texts (truncated at
    512 tokens) and odd characters included."""
    import json
    import subprocess
    import sys

    import numpy as np

    from qa.config import Settings
    from qa.embeddings import Embedder

    pytest.importorskip("onnxruntime")
    env = {k: v for k, v in os.environ.items() if k != "QA_BACKEND"}
    Embedder("default", Settings(precision="float32"))  # exports the graph if this machine has not yet
    texts = BACKEND_TEXTS + ["长文本" * 400, "ＡＢＣ　全角 Ｔｅｓｔ", "é😀 emoji ñ", "  "]
    out = subprocess.run([sys.executable, "-c", LEAN_PROBE, json.dumps(texts)], capture_output=True, text=True,
                         env=env, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["runner"] == "LeanRunner" and got["heavy_imports"] == []
    hf = torch_ref.model.tokenizer(["passage: " + t for t in texts], truncation=True, max_length=512)["input_ids"]
    assert got["ids"] == hf
    assert max(len(i) for i in got["ids"]) == 512
    p = (np.array(got["passages"]) * torch_ref.encode_passages(texts)).sum(1)
    q = (np.array(got["queries"]) * torch_ref.encode_queries(texts)).sum(1)
    assert p.min() >= 0.9999 and q.min() >= 0.9999, (p, q)  # float32 up to CPU-dependent summation order
