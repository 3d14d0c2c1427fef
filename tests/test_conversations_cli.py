"""`qa chat` with questions piped in, `qa eval-dialogues`, and the committed dialogue set itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED

DIALOGUES = ROOT / "bench" / "data" / "dialogues.jsonl"


def qa(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qa.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
        input=stdin, env={**os.environ, "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))},
    )


def test_help():
    assert "/new" in qa("chat", "--help").stdout
    out = qa("eval-dialogues", "--help").stdout
    assert "resolution" in out and "--index" in out


def test_chat_keeps_the_thread_with_a_pipe_on_stdin(built_index):
    before = set(built_index.iterdir())
    r = qa("chat", "--index", str(built_index), "--json", "-k", "2",
           stdin="Redis 缓存是怎么设计的？\n它默认多久过期？\n\n/new\n它默认多久过期？\n")
    assert r.returncode == 0, r.stderr
    answers = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert len(answers) == 3
    first, follow, fresh = answers
    assert follow["conversation_id"] == first["conversation_id"] and follow["conversation"]["turn"] == 2
    assert "Redis" in follow["searched"] and "30 分钟" in follow["answer"]
    assert fresh["conversation_id"] != first["conversation_id"] and fresh["searched"] is None
    assert set(built_index.iterdir()) <= before | {built_index / "conversations.sqlite"}  # nothing new beside the index


def test_chat_terminal_output_shows_what_was_searched(built_index):
    r = qa("chat", "--index", str(built_index), stdin="Redis 缓存是怎么设计的？\n它默认多久过期？\n")
    assert r.returncode == 0, r.stderr
    assert "searched: Redis" in r.stdout and "Sources" in r.stdout


def test_chat_without_an_index_fails_clearly(tmp_path):
    r = qa("chat", "--index", str(tmp_path / "none"), stdin="Helm 是什么？\n")
    assert r.returncode == 2 and "qa ingest" in r.stderr


def test_eval_dialogues_scores_follow_ups_on_and_off(built_index, tmp_path):
    data = tmp_path / "d.jsonl"
    turns = [
        {"q": "Redis 缓存是怎么设计的？", "followup": False, "kind": "first", "file": "ops/redis-cache.md", "lines": [1, 20], "span": "Redis"},
        {"q": "它默认多久过期？", "followup": True, "kind": "pronoun", "file": "ops/redis-cache.md", "lines": [12, 12], "span": "默认 30 分钟"},
        {"q": "换个问题，Helm 怎么回滚？", "followup": False, "kind": "shift", "file": "ops/helm-basics.md", "lines": [1, 40], "span": "helm rollback"},
    ]
    data.write_text(json.dumps({"id": "d1", "turns": turns}, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "r.json"
    r = qa("eval-dialogues", str(data), "--index", str(built_index), "--json", "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert json.loads(out.read_text()) == res
    on, off = res["with_resolution"], res["without_resolution"]
    assert on["followup"]["turns"] == 1 and on["followup"]["file_hit@1"] == 1.0 and on["followup"]["answer_hit"] == 1.0
    assert on["followup"]["rewritten"] == 1.0 and off["followup"]["rewritten"] == 0.0  # off: searched as asked
    assert res["misses"] == [] and res["by_kind"]["pronoun"]["turns"] == 1
    assert on["standalone"]["rewritten"] == 0.0 and res["standalone_rewritten_rate"] == 0.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    r = qa("eval-dialogues", str(bad), "--index", str(built_index))
    assert r.returncode == 1 and "turns" in r.stderr


@pytest.mark.skipif(not (SHARED / "data" / "zh-tech-corpus").is_dir(), reason="../shared/data/zh-tech-corpus is absent")
def test_every_gold_span_is_verbatim_in_its_file_at_its_lines():
    dialogues = [json.loads(line) for line in DIALOGUES.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(dialogues) >= 60
    assert all(2 <= len(d["turns"]) <= 4 for d in dialogues)
    kinds = {t["kind"] for d in dialogues for t in d["turns"]}
    assert {"pronoun", "ellipsis", "comparison", "shift", "standalone", "short"} <= kinds
    roots = {"zh-tech-corpus": SHARED / "data" / "zh-tech-corpus", "corpus": ROOT / "corpus"}
    for d in dialogues:
        for t in d["turns"]:
            lines = (roots[t["corpus"]] / t["file"]).read_text(encoding="utf-8").splitlines()
            a, b = t["lines"]
            assert 1 <= a <= b <= len(lines), (d["id"], t["q"])
            assert t["span"] and t["span"] in "\n".join(lines[a - 1:b]), (d["id"], t["q"], t["span"])
            for alt in t.get("alt_files", []):
                assert (roots[t["corpus"]] / alt).is_file()
