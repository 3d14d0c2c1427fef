"""The `qa` command as a user runs it (subprocesses, real index)."""

from __future__ import annotations

import pytest

import json
import os
import subprocess
import sys
from pathlib import Path

pytestmark = [pytest.mark.model]

ROOT = Path(__file__).resolve().parents[1]


def qa(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qa.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_help_explains_commands():
    out = qa("--help").stdout
    for cmd in ("ingest", "ask", "serve", "stats"):
        assert cmd in out
    assert "--top-k" in qa("ask", "--help").stdout


def test_ask_json_is_the_http_shape(built_index):
    r = qa("ask", "Redis 缓存默认多久过期？", "--index", str(built_index), "--json", "--top-k", "2")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert "30 分钟" in body["answer"]
    assert len(body["citations"]) == 2
    assert body["citations"][0]["path"].endswith("redis-cache.md")


def test_ask_terminal_output_lists_sources_with_lines(built_index):
    r = qa("ask", "kubectl uncordon 是做什么的？", "--index", str(built_index))
    assert r.returncode == 0, r.stderr
    assert "Sources" in r.stdout and "cluster-upgrade.md:" in r.stdout


def test_stats_and_missing_index(built_index, tmp_path):
    r = qa("stats", "--index", str(built_index), "--json")
    info = json.loads(r.stdout)
    assert info["documents"] == 4 and info["chunks"] > 10 and info["model"] == "multilingual-e5-small"
    r = qa("ask", "k8s", "--index", str(tmp_path / "none"))
    assert r.returncode == 2 and "qa ingest" in r.stderr


def test_empty_question_is_refused(built_index):
    r = qa("ask", "   ", "--index", str(built_index))
    assert r.returncode == 2 and "empty" in r.stderr


def test_asking_with_another_model_is_refused(built_index):
    r = qa("ask", "k8s", "--index", str(built_index), "--model", "sentence-transformers/all-MiniLM-L6-v2")
    assert r.returncode == 2
    assert "rebuild" in r.stderr and "multilingual-e5-small" in r.stderr
