"""A persistent cache of passage vectors keyed by hash(model identity + embedded text).

Like simonw/llm's collections: content that was embedded once is never embedded
again, whichever index, collection or rebuild asks for it.  It is only a cache:
losing it costs time, never correctness, so writes need no coordination beyond
SQLite's own locking (WAL).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from qa.wal import enable_wal


class EmbeddingCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, timeout=30)
        enable_wal(self.conn)
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS vectors (hash TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    def get_many(self, hashes: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for i in range(0, len(hashes), 500):
            part = hashes[i : i + 500]
            marks = ",".join("?" * len(part))
            out.update(self.conn.execute(f"SELECT hash, vec FROM vectors WHERE hash IN ({marks})", part).fetchall())
        return out

    def put_many(self, items: dict[str, bytes]) -> None:
        with self.conn:
            self.conn.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?)", list(items.items()))

    def close(self) -> None:
        self.conn.close()


class CacheWriter:
    """Vectors reach the cache while a long ingest runs, not at its end: buffered and committed
    every ``interval`` seconds (or ``max_items``), so a run killed at any point loses at most
    the last few seconds of embedding, and the next run finds the rest in the cache.

    A failing write (disk full, the cache locked for too long) disables the writer with a
    warning: the cache is only a cache, the ingest goes on."""

    def __init__(self, cache: EmbeddingCache, interval: float = 2.0, max_items: int = 512):
        self.cache, self.interval, self.max_items = cache, interval, max_items
        self.buffer: dict[str, bytes] = {}
        self.written = 0
        self._last = time.monotonic()
        self.failed: str | None = None

    def add(self, items: dict[str, bytes]) -> None:
        if self.failed:
            return
        self.buffer.update(items)
        if len(self.buffer) >= self.max_items or time.monotonic() - self._last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self.buffer and not self.failed:
            try:
                self.cache.put_many(self.buffer)
                self.written += len(self.buffer)
            except sqlite3.Error as exc:
                import logging

                self.failed = str(exc)
                logging.getLogger(__name__).warning("embedding cache not written (%s): continuing without it", exc)
        self.buffer = {}
        self._last = time.monotonic()

    def close(self) -> None:
        self.flush()


def open_cache(cache_dir: Path) -> EmbeddingCache | None:
    try:
        return EmbeddingCache(Path(cache_dir) / "embeddings.sqlite")
    except sqlite3.Error:
        return None  # unwritable cache folder: embed without a cache
