"""The question log: nothing lost under concurrent writers (threads and processes), votes
idempotent per voter, purge and retention, off means off, a re-ingest keeps the log."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from qa.responses import Answer, Citation, IndexInfo, Scores
from qa.questionlog import DB_NAME, QuestionLog, UnknownAnswer, close_logs, db_path, open_log, vector_from
from tests.conftest import ROOT, make_settings


def answer(question: str, status: str = "answered", path: str = "docs/a.md") -> Answer:
    cites = [] if status == "not_covered" else [Citation(
        n=1, title="A", path=path, heading="H", text="secret passage text", start=0, end=10,
        line_start=3, line_end=9, scores=Scores(fused=1.0, confidence=0.8),
    )]
    return Answer(
        question=question, answer="x", abstained=status == "not_covered", status=status, confidence=0.7,
        citations=cites, took_ms=1.0, index=IndexInfo(generation="gen-000001", model="m"),
    )


def rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as c:
        return c.execute("SELECT answer_id, channel, question, status, sources, vector FROM questions").fetchall()


def test_threads_times_questions_every_row_written(tmp_path):
    ql = QuestionLog(tmp_path / DB_NAME, batch=64)
    n_threads, per_thread = 8, 250
    ids: list[str] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(per_thread):
            a = answer(f"问题 {t}-{i}", "not_covered" if i % 3 == 0 else "answered")
            ql.record(a, "slack" if t % 2 else "http", np.full(8, 0.5, dtype=np.float32))
            with lock:
                ids.append(a.answer_id)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ql.flush(30)
    got = rows(tmp_path / DB_NAME)
    assert len(got) == n_threads * per_thread == len(set(ids))
    assert {r[0] for r in got} == set(ids)
    assert ql.dropped == 0
    # vectors come back as float16, the citation as file/lines only (never the passage text)
    assert np.allclose(vector_from(got[0][5]), 0.5)
    assert all("secret passage text" not in r[4] for r in got)
    ql.close()


WRITER = """
import sys, threading
sys.path.insert(0, {root!r})
from pathlib import Path
from tests.test_questionlog import answer
from qa.questionlog import QuestionLog
ql = QuestionLog(Path({path!r}), batch=16)
def run(t):
    for i in range({m}):
        ql.record(answer(f"p{{sys.argv[1]}} t{{t}} q{{i}}"), "http")
ts = [threading.Thread(target=run, args=(t,)) for t in range({n})]
[t.start() for t in ts]; [t.join() for t in ts]
ql.close()
print(ql.written, ql.dropped)
"""


def test_several_processes_share_the_file_without_loss(tmp_path):
    path = tmp_path / DB_NAME
    procs, n, m = 3, 4, 150
    code = WRITER.format(root=str(ROOT), path=str(path), n=n, m=m)
    ps = [subprocess.Popen([sys.executable, "-c", code, str(p)], stdout=subprocess.PIPE, text=True) for p in range(procs)]
    outs = [p.communicate(timeout=120)[0].split() for p in ps]
    assert all(p.returncode == 0 for p in ps)
    assert sum(int(o[0]) for o in outs) == procs * n * m and all(o[1] == "0" for o in outs)
    assert len(rows(path)) == procs * n * m


def test_votes_are_one_per_voter_and_unknown_ids_refused(tmp_path):
    ql = QuestionLog(tmp_path / DB_NAME)
    a = answer("Helm 怎么回滚？")
    ql.record(a, "web")
    alice, bob = ql.hash_identity("ip:10.0.0.1"), ql.hash_identity("ip:10.0.0.2")
    assert "10.0.0.1" not in alice and alice != bob
    assert ql.vote(a.answer_id, alice, "down", "过时了").changed  # right after the answer: still queued
    assert not ql.vote(a.answer_id, alice, "down").changed  # the same vote again: nothing changes
    assert ql.vote(a.answer_id, alice, "up").changed  # changing one's mind replaces the vote
    assert ql.vote(a.answer_id, bob, "down").changed
    votes = ql.votes()
    assert sorted(v[2] for v in votes) == ["down", "up"]
    assert [v[3] for v in votes if v[1] == alice] == ["过时了"]  # the comment survives the change of vote
    with pytest.raises(UnknownAnswer):
        ql.vote("ans_00000000000000000000", alice, "up")
    with pytest.raises(ValueError):
        ql.vote(a.answer_id, alice, "sideways")
    ql.close()


def test_purge_before_and_all_and_retention(tmp_path):
    ql = QuestionLog(tmp_path / DB_NAME, retention_days=30)
    old, new = answer("旧问题"), answer("新问题")
    ql.record(old, "http")
    ql.record(new, "http")
    ql.flush()
    ql.vote(old.answer_id, "v", "down")
    with ql.conn as c:
        c.execute("UPDATE questions SET ts = ? WHERE answer_id = ?", (time.time() - 40 * 86400, old.answer_id))
        c.execute("UPDATE votes SET ts = ?", (time.time() - 40 * 86400,))
    assert ql.purge(before_days=60) == {"questions": 0, "votes": 0}
    assert ql.purge() == {"questions": 1, "votes": 1}  # the retention period (30 days)
    assert [r[2] for r in rows(tmp_path / DB_NAME)] == ["新问题"]
    assert ql.purge(everything=True)["questions"] == 1
    assert rows(tmp_path / DB_NAME) == []
    ql.close()


def test_cli_purge_and_stats(tmp_path):
    settings = make_settings(tmp_path)
    ql = open_log(settings)
    for i in range(3):
        ql.record(answer(f"q{i}"), "cli")
    close_logs()
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "qa.cli", *a, "--index", str(tmp_path), "--json"],  # noqa: E731
                                    capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    stats = run("log", "stats")
    assert stats.returncode == 0 and '"questions": 3' in stats.stdout and '"logging": "on"' in stats.stdout
    assert '"questions": 0' in run("log", "purge", "--before", "1").stdout
    purged = run("log", "purge", "--all")
    assert purged.returncode == 0 and '"questions": 3' in purged.stdout
    assert rows(db_path(settings)) == []


def test_off_means_no_log(tmp_path):
    settings = make_settings(tmp_path, question_log=False)
    assert open_log(settings) is None
    assert not (tmp_path / DB_NAME).exists()


def test_question_log_setting_reads_on_and_off(monkeypatch, tmp_path):
    from qa.config import Settings

    monkeypatch.setenv("QA_QUESTION_LOG", "off")
    assert Settings().question_log is False
    monkeypatch.setenv("QA_QUESTION_LOG", "on")
    assert Settings().question_log is True


@pytest.mark.model
def test_reingest_keeps_the_log(tmp_path, corpus_dir):
    from qa.ingest import ingest

    index = tmp_path / "index"
    settings = make_settings(index)
    assert ingest(corpus_dir, settings).published
    ql = open_log(settings)
    ql.record(answer("Helm 怎么回滚？"), "http")
    close_logs()
    assert ingest(corpus_dir, settings, rebuild=True).published
    assert db_path(settings).parent == index and [r[2] for r in rows(db_path(settings))] == ["Helm 怎么回滚？"]
