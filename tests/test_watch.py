"""`qa ingest --watch`: a real subprocess picks up new, changed and deleted files and stops cleanly."""

from __future__ import annotations

import pytest

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path


from qa.check import check_index
from qa.store import DB_NAME, current_generation
from tests.conftest import FIXTURES, isolated_cache, make_settings

pytestmark = [pytest.mark.model]

ROOT = Path(__file__).resolve().parents[1]


def _paths(index: Path) -> set[str]:
    gen = current_generation(index)
    if gen is None:
        return set()
    conn = sqlite3.connect(f"file:{index / gen / DB_NAME}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT path FROM documents")}
    finally:
        conn.close()


def _wait_for(cond, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"watcher exited ({proc.returncode}) while waiting for {what}: {proc.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


NEW = "---\ntitle: 监控\n---\n\n# 监控模式\n\n监控模式下新写入的文件会被自动收录，无需手动运行。\n"


def test_watch_subprocess_follows_changes_and_stops_on_ctrl_c(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(FIXTURES / "corpus", corpus)
    # started with SIGINT ignored, as `cmd &` in a non-interactive shell does: Ctrl-C must still work
    ignore_int = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "ingest", str(corpus), "--index", str(index), "--watch", "--json",
         "--debounce", "200"], preexec_fn=ignore_int,
        # a cache of its own: no other test's process can hold the shared embedding cache's lock
        cwd=ROOT, env={**os.environ, "QA_INDEX_DIR": str(index), "QA_CACHE_DIR": str(isolated_cache(tmp_path))},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for(lambda: len(_paths(index)) == 4, 180, "the first run", proc)
        first = current_generation(index)

        name = "ops/新 文件 🚀.md"
        (corpus / name).write_text(NEW, encoding="utf-8")
        _wait_for(lambda: name in _paths(index), 60, "the new file to be indexed", proc)
        assert current_generation(index) != first

        (corpus / "ops" / "redis-cache.md").unlink()
        _wait_for(lambda: "ops/redis-cache.md" not in _paths(index), 60, "the deleted file to leave", proc)
        result = check_index(index)
        assert result["ok"], result["problems"]
        assert result["counts"]["documents"] == 4
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            out, errout = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, errout[-2000:]
    runs = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(runs) >= 3  # start, new file, deletion (a burst may be one more run, never fewer)
    assert runs[0]["published"] and len(runs[0]["added"]) == 4
    assert any(r["added"] == [name] for r in runs)
    assert any(r["removed"] == ["ops/redis-cache.md"] for r in runs)
    assert "Traceback" not in errout
    assert check_index(index)["ok"] and not check_index(index)["leftover_temp"]
    from filelock import FileLock

    with FileLock(str(index / ".lock"), timeout=0):  # released on exit
        pass


def test_watch_reports_a_failed_run_and_retries(tmp_path, monkeypatch):
    """A run that cannot take the lock is reported, not fatal, and retried without a new change."""
    from filelock import FileLock

    import qa.watch
    from qa.ingest import IngestLocked, IngestReport
    from qa.watch import watch

    monkeypatch.setattr(qa.watch, "RETRY_S", 0.5)  # the retry is the subject, not its 5 s delay

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(FIXTURES / "corpus", corpus)
    index.mkdir()
    outcomes: list = []
    stop = threading.Event()
    lock = FileLock(str(index / ".lock"), thread_local=False)  # released from the watch thread
    lock.acquire()

    def on_run(outcome):
        outcomes.append(outcome)
        if isinstance(outcome, IngestLocked):
            lock.release()  # the other "ingest" finishes
        elif isinstance(outcome, IngestReport):
            stop.set()

    t = threading.Thread(
        target=watch, args=(corpus, make_settings(index)),
        kwargs={"on_run": on_run, "stop_event": stop, "lock_wait": 0}, daemon=True,
    )
    t.start()
    t.join(300)
    assert not t.is_alive()
    assert isinstance(outcomes[0], IngestLocked) and "another `qa ingest`" in str(outcomes[0])
    assert isinstance(outcomes[-1], IngestReport) and outcomes[-1].published
    assert check_index(index)["ok"]


def test_watch_missing_folder_is_a_clear_error(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "qa.cli", "ingest", str(tmp_path / "nope"), "--index", str(tmp_path / "i"), "--watch"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 1 and "does not exist" in " ".join(r.stderr.split())
