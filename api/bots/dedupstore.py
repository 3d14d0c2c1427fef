"""Delivered event ids on disk (SQLite), so a restart does not forget what was answered.

Feishu and WeCom accept requests signed up to ``QA_BOT_DEDUP_TTL_S`` (24 h) ago, and platforms
retry deliveries; with ids kept only in memory, a restarted server would answer a retry, or a
captured request replayed after the restart, a second time. The ids are kept in
``QA_BOT_STATE_DIR`` (default: ``<index_dir>.bot-state`` beside the index folder, outside the
index generations, which ``qa ingest`` replaces). Several server processes sharing the folder
also share the memory: the insert is atomic, so exactly one of them answers. When the folder
cannot be written (a read-only volume) the ids are kept in memory, as before, with a warning.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from qa.config import Settings

log = logging.getLogger("api.bots")

DB_NAME = "dedup.sqlite"


class SqliteDeduper:
    """``first_time(key)``: True exactly once per key within the TTL, across restarts and processes."""

    def __init__(self, path: Path, ttl_s: float, prune_every: int = 1000):
        self.path = path
        self.ttl_s = ttl_s
        self.prune_every = prune_every
        self._inserts = 0
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at REAL NOT NULL)")
        self._prune(time.time())

    def first_time(self, key: str) -> bool:
        now = time.time()  # wall clock: it must mean the same after a restart
        with self._lock:
            # new key, or one remembered longer ago than the TTL: this delivery is the first
            cur = self._conn.execute(
                "INSERT INTO seen (key, at) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET at = excluded.at "
                "WHERE seen.at < ?", (key, now, now - self.ttl_s),
            )
            first = cur.rowcount == 1
            self._inserts += 1
            if self._inserts % self.prune_every == 0:
                self._prune(now)
            return first

    def _prune(self, now: float) -> None:
        self._conn.execute("DELETE FROM seen WHERE at < ?", (now - self.ttl_s,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def state_dir(settings: Settings) -> Path:
    if settings.bot_state_dir is not None:
        return Path(settings.bot_state_dir)
    index = Path(settings.index_dir)
    return index.with_name(index.name + ".bot-state")


def open_deduper(settings: Settings):
    """The SQLite memory in the state folder, or the in-memory one when that cannot be written."""
    from api.bots.common import Deduper

    folder = state_dir(settings)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return SqliteDeduper(folder / DB_NAME, settings.bot_dedup_ttl_s)
    except (OSError, sqlite3.Error) as exc:
        log.warning(
            "cannot keep delivered event ids in %s (%s): keeping them in memory; after a restart a "
            "platform retry or replay could be answered twice (set QA_BOT_STATE_DIR to a writable folder)",
            folder, exc,
        )
        return Deduper(settings.bot_dedup_ttl_s)
