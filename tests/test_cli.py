"""The `qa` command as a user runs it (subprocesses, real index)."""

from __future__ import annotations

import pytest

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import side_by_side

pytestmark = [pytest.mark.model]

ROOT = Path(__file__).resolve().parents[1]


def qa(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qa.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def asked(request, built_index):
    """The read-only `qa ask` runs over the shared index, started side by side (tests/conftest.py)."""
    index = str(built_index)
    yield from side_by_side(request, {
        "test_ask_json_is_the_http_shape": lambda: qa("ask", "Redis 缓存默认多久过期？", "--index", index, "--json", "--top-k", "2"),
        "test_ask_terminal_output_lists_sources_with_lines": lambda: qa("ask", "kubectl uncordon 是做什么的？", "--index", index),
        "test_empty_question_is_refused": lambda: qa("ask", "   ", "--index", index),
    })


def test_help_explains_commands():
    out = qa("--help").stdout
    for cmd in ("ingest", "ask", "serve", "stats"):
        assert cmd in out
    assert "--top-k" in qa("ask", "--help").stdout


def test_ask_json_is_the_http_shape(asked):
    r = asked["test_ask_json_is_the_http_shape"].result()  # qa ask 'Redis 缓存默认多久过期？' --json --top-k 2
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert "30 分钟" in body["answer"]
    assert len(body["citations"]) == 2
    assert body["citations"][0]["path"].endswith("redis-cache.md")


def test_ask_terminal_output_lists_sources_with_lines(asked):
    r = asked["test_ask_terminal_output_lists_sources_with_lines"].result()  # qa ask 'kubectl uncordon 是做什么的？'
    assert r.returncode == 0, r.stderr
    assert "Sources" in r.stdout and "cluster-upgrade.md:" in r.stdout


def test_stats_and_missing_index(built_index, tmp_path):
    r = qa("stats", "--index", str(built_index), "--json")
    info = json.loads(r.stdout)
    assert info["documents"] == 4 and info["chunks"] > 10 and info["model"] == "multilingual-e5-small"
    r = qa("ask", "k8s", "--index", str(tmp_path / "none"))
    assert r.returncode == 2 and "qa ingest" in r.stderr


def test_empty_question_is_refused(asked):
    r = asked["test_empty_question_is_refused"].result()  # qa ask '   '
    assert r.returncode == 2 and "empty" in r.stderr


def test_asking_with_another_model_is_refused(built_index):
    r = qa("ask", "k8s", "--index", str(built_index), "--model", "sentence-transformers/all-MiniLM-L6-v2")
    assert r.returncode == 2
    assert "rebuild" in r.stderr and "multilingual-e5-small" in r.stderr


# ---- issue 15: what reaches the terminal -----------------------------------------------------


def test_control_characters_in_file_names_are_escaped(tmp_path):
    """An ESC in a name must not colour the terminal; a newline must not forge a report line."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.md").write_text("# 好文章\n\n内容足够长的一段正文，说明缓存的过期时间是三十分钟。\n", encoding="utf-8")
    (corpus / "evil\x1b[31mred.md").write_bytes(b"\x00\x01binary")
    (corpus / "x.md\n  skipped forged.md").write_bytes(b"\x00\x01binary")
    r = qa("ingest", str(corpus), "--index", str(tmp_path / "index"), "--verbose")  # lists every skipped file
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout + r.stderr
    assert "evil\\x1b[31mred.md" in r.stdout and "x.md\\n  skipped forged.md" in r.stdout
    assert not any(line.startswith("  skipped forged.md") for line in r.stdout.splitlines())
    # --json was already safe, and stays exact
    r = qa("ingest", str(corpus), "--index", str(tmp_path / "index"), "--json")
    names = {s["path"] for s in json.loads(r.stdout)["skipped"]}
    assert {"evil\x1b[31mred.md", "x.md\n  skipped forged.md"} <= names


def test_reingest_reports_the_index_and_a_killed_ingest_is_reported_and_cleaned(built_index, corpus_dir, tmp_path):
    import shutil

    from qa.store import IndexReader

    index, corpus = tmp_path / "index", tmp_path / "corpus"
    shutil.copytree(built_index, index)
    shutil.copytree(corpus_dir, corpus)
    chunks = IndexReader(index).info()["chunks"]
    r = qa("ingest", str(corpus), "--index", str(index))
    assert r.returncode == 0 and f"passages: {chunks} in index" in r.stdout, r.stdout  # not "0 in index"

    # an ingest killed while building leaves its temporary folder behind
    (corpus / "new.md").write_text("# 新文章\n\n猫头鹰机器人每天凌晨检查证书。\n", encoding="utf-8")
    r = qa("ingest", str(corpus), "--index", str(index), env={"QA_FAULT": "after-embed"})
    assert r.returncode != 0
    (leftover,) = [p.name for p in index.glob("gen-*.tmp*")]
    (corpus / "new.md").unlink()
    r = qa("check", "--index", str(index))
    assert r.returncode == 0 and "ok" in r.stdout
    assert leftover in r.stderr and "interrupted ingest" in r.stderr
    # the next run removes it, even though it has nothing to publish
    r = qa("ingest", str(corpus), "--index", str(index))
    assert r.returncode == 0 and f"passages: {chunks} in index" in r.stdout
    assert not list(index.glob("gen-*.tmp*"))
    assert leftover not in qa("check", "--index", str(index)).stderr
