"""Incremental ingest, invalidation, locking and crash safety (real model, FAISS, SQLite)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qa.check import check_index
from qa.ingest import IngestLocked, ingest
from qa.store import current_generation
from tests.conftest import FIXTURES, make_settings

pytestmark = [pytest.mark.model]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def corpus(tmp_path) -> Path:
    dest = tmp_path / "corpus"
    shutil.copytree(FIXTURES / "corpus", dest)
    return dest


@pytest.fixture()
def index(tmp_path, corpus) -> Path:
    idx = tmp_path / "index"
    report = ingest(corpus, make_settings(idx))
    assert report.published
    return idx


NEW_DOC = """---
title: 日志收集
---

# 日志收集方案

我们使用 Fluent Bit 采集容器日志，并发送到 Loki 集中存储。日志保留 14 天。
"""


def test_rerun_unchanged_is_a_noop(corpus, index, monkeypatch):
    import qa.embeddings

    def no_model(*a, **kw):
        raise AssertionError("an unchanged corpus must not load the model")

    monkeypatch.setattr(qa.embeddings, "get_embedder", no_model)
    gen = current_generation(index)
    report = ingest(corpus, make_settings(index))
    assert report.unchanged == 4 and not (report.added or report.changed or report.removed)
    assert not report.published and current_generation(index) == gen


def test_add_change_remove_reembeds_only_what_changed(corpus, index):
    before = check_index(index)["counts"]
    (corpus / "ops" / "logging.md").write_text(NEW_DOC, encoding="utf-8")
    helm = corpus / "ops" / "helm-basics.md"
    helm.write_text(helm.read_text(encoding="utf-8") + "\n## 卸载\n\n卸载一个 Release 使用 helm uninstall。\n", encoding="utf-8")
    (corpus / "ops" / "redis-cache.md").unlink()
    report = ingest(corpus, make_settings(index))
    assert report.added == ["ops/logging.md"]
    assert report.changed == ["ops/helm-basics.md"]
    assert report.removed == ["ops/redis-cache.md"]
    assert report.unchanged == 2
    # only the new doc's passage and the changed section are embedded; the rest of helm is reused
    new = report.chunks_embedded + report.chunks_cached  # computed now, or by an earlier run
    assert 1 <= new <= 3
    assert report.chunks_reused - report.chunks_cached >= 2  # carried over from the served index
    result = check_index(index)
    assert result["ok"], result["problems"]
    assert result["counts"]["documents"] == before["documents"]

    from qa.assistant import Assistant

    bot = Assistant.open(index, settings=make_settings(index))
    assert "14 天" in bot.ask("日志保留多久？").answer
    assert "helm uninstall" in bot.ask("怎么卸载 Helm Release？").answer
    assert all("redis" not in c.path for c in bot.ask("Redis 缓存过期时间").citations)


def test_chunker_change_invalidates_with_a_message(corpus, index):
    report = ingest(corpus, make_settings(index, chunk_size=120))
    assert report.rebuild_reason and "chunker" in report.rebuild_reason
    assert report.published and report.chunks_embedded + report.chunks_cached > 0
    assert check_index(index)["ok"]
    forced = ingest(corpus, make_settings(index, chunk_size=120), rebuild=True)
    assert forced.rebuild_reason == "--rebuild"
    # a rebuild re-chunks everything; identical passages come from the embedding cache
    assert forced.chunks_embedded == 0 and forced.chunks_cached == forced.chunks_total
    nocache = ingest(corpus, make_settings(index, chunk_size=120), rebuild=True, use_cache=False)
    assert nocache.chunks_embedded == nocache.chunks_total


def test_collections_are_separate(corpus, index, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "logging.md").write_text(NEW_DOC, encoding="utf-8")
    report = ingest(other, make_settings(index), collection="ops-notes")
    assert report.added == ["logging.md"] and not report.removed  # the default collection is untouched
    from qa.assistant import Assistant

    bot = Assistant.open(index, settings=make_settings(index))
    only = bot.ask("日志保留多久？", collection="ops-notes")
    assert only.citations and all(c.collection == "ops-notes" for c in only.citations)
    assert bot.ask("Helm 怎么回滚？", collection="default").citations[0].collection == "default"


def test_a_full_rebuild_of_one_collection_keeps_the_others(corpus, index, tmp_path):
    """A chunker change (or --rebuild) re-chunks everything; it used to start from an empty
    index, so rebuilding one collection dropped every other one."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "logging.md").write_text(NEW_DOC, encoding="utf-8")
    ingest(other, make_settings(index), collection="ops-notes")
    n_default = len(ingest(corpus, make_settings(index)).indexed)
    for size in (150, 200):  # the second rebuild finds the folders the first one recorded
        report = ingest(other, make_settings(index, chunk_size=size), collection="ops-notes")
        assert report.rebuild_reason and report.also_rebuilt == {"default": n_default}
    from qa.assistant import Assistant

    bot = Assistant.open(index, settings=make_settings(index, chunk_size=200))
    assert bot.ask("Helm 怎么回滚？", collection="default").citations[0].collection == "default"
    assert bot.ask("日志保留多久？", collection="ops-notes").citations
    # a collection whose folder is gone stops the rebuild with its name; nothing is lost
    shutil.rmtree(corpus)
    served = current_generation(index)
    with pytest.raises(FileNotFoundError, match=r"default \(last ingested from"):
        ingest(other, make_settings(index), collection="ops-notes", rebuild=True)
    assert current_generation(index) == served


def test_second_ingest_is_locked_out(corpus, index):
    from filelock import FileLock

    with FileLock(str(index / ".lock")):
        with pytest.raises(IngestLocked, match="another `qa ingest`"):
            ingest(corpus, make_settings(index))


def test_bad_files_are_reported_not_fatal(corpus, index):
    (corpus / "binary.md").write_bytes(b"\x00\x01\x02PNG\x00" * 100)
    (corpus / "gbk.md").write_bytes("# 编码\n\n这是一篇 GBK 编码的文章，讲的是字符集转换。\n".encode("gbk"))
    (corpus / "broken.md").write_text("---\ntitle: [unclosed\n---\n\n正文仍然要保留。\n", encoding="utf-8")
    report = ingest(corpus, make_settings(index))
    reasons = {s["path"]: s["reason"] for s in report.skipped}
    assert "binary" in reasons["binary.md"]
    assert set(report.added) == {"gbk.md", "broken.md"}
    assert any(w["path"] == "broken.md" for w in report.warnings)
    assert check_index(index)["ok"]


def _run_ingest(corpus: Path, index: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "QA_INDEX_DIR": str(index)}
    if fault:
        env["QA_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "qa.cli", "ingest", str(corpus), "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def test_sigkill_at_any_step_leaves_the_served_index_intact(corpus, index):
    from qa.assistant import Assistant

    gen = current_generation(index)
    (corpus / "ops" / "logging.md").write_text(NEW_DOC, encoding="utf-8")
    (corpus / "ops" / "redis-cache.md").unlink()
    for fault in ("after-embed", "before-faiss", "before-rename", "before-current"):
        r = _run_ingest(corpus, index, fault)
        assert r.returncode == -9, (fault, r.stderr[-2000:])
        assert current_generation(index) == gen, fault
        result = check_index(index)
        assert result["ok"], (fault, result["problems"])
        bot = Assistant.open(index, settings=make_settings(index))
        assert "30 分钟" in bot.ask("缓存默认多久过期？").answer  # still the old content
    r = _run_ingest(corpus, index, None)
    assert r.returncode == 0, r.stderr[-2000:]
    result = check_index(index)
    assert result["ok"] and not result["leftover_temp"], result
    assert current_generation(index) != gen
    bot = Assistant.open(index, settings=make_settings(index))
    assert "14 天" in bot.ask("日志保留多久？").answer
    assert result["counts"]["documents"] == 4  # one added, one removed: no duplicates, no orphans


def test_mapped_vectors_search_like_read_ones_and_survive_removal(tmp_path):
    """The served FAISS file is memory-mapped (shared by every process serving the generation):
    results equal a normal read, and a generation folder removed by a later ingest keeps answering
    in a server that still has it open."""
    import faiss
    import numpy as np

    from qa.vectors.faiss_build import build_index
    from qa.store import map_faiss

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((500, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    path = tmp_path / "vectors.faiss"
    faiss.write_index(build_index(vecs, np.arange(500) * 7), str(path))
    mapped, read = map_faiss(path), faiss.read_index(str(path))
    q = vecs[:20] + 0.05 * rng.standard_normal((20, 32)).astype(np.float32)
    assert np.array_equal(mapped.search(q, 10)[1], read.search(q, 10)[1])
    path.unlink()
    assert np.array_equal(mapped.search(q, 10)[1], read.search(q, 10)[1])
