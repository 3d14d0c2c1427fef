"""The question log: what was asked, how it was answered, and the votes on the answers.

Why it exists: every "not covered" answer, every stub hit and every 👎 points at a missing or
weak article; ``qa gaps`` (:mod:`qa.gaps`) turns this log into a report for the writers.

What is stored (one SQLite file, ``questions.sqlite``, in ``QA_STATE_DIR`` or else the index
folder, beside its generations so a re-ingest or ``--rebuild`` keeps it):

* ``questions``: time, channel (http, web, slack, feishu, dingtalk, wecom, cli), the question
  text, the answer's status (answered / not_covered / stub), its confidence, the cited passages
  (file, lines, heading; no passage text), the answer id, the index generation and the question's
  embedding (float16, taken from the embedder's cache: never computed for the log);
* ``votes``: answer id, a salted hash of the voter (API-key label, client IP or chat user id:
  never the key, IP or id itself), up/down, an optional comment, time;
* ``meta``: the random salt of those hashes (made on first use).

No API keys, tokens, user ids or IPs are stored in clear. ``QA_QUESTION_LOG=off`` stores
nothing; ``qa log purge`` deletes; rows older than ``QA_QUESTION_LOG_DAYS`` are deleted
automatically.

Writes never slow or fail a question: :meth:`QuestionLog.record` only puts the answer on a
bounded in-memory queue; one writer thread per process drains it in batches (one transaction
per batch). SQLite in WAL mode with a busy timeout lets several server processes and the CLI
share the file. A full queue or a failing disk drops log rows (counted in ``dropped``,
logged), never answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from qa.responses import Answer
from qa.wal import enable_wal

log = logging.getLogger("qa.questionlog")

DB_NAME = "questions.sqlite"
CHANNELS = ("http", "web", "slack", "feishu", "dingtalk", "wecom", "cli", "python", "chat")
DAY = 86400.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS questions (
    id INTEGER PRIMARY KEY,
    answer_id TEXT NOT NULL UNIQUE,
    ts REAL NOT NULL,
    channel TEXT NOT NULL,
    question TEXT NOT NULL,
    status TEXT NOT NULL,
    confidence REAL NOT NULL,
    sources TEXT NOT NULL DEFAULT '[]',
    generation TEXT,
    vector BLOB
);
CREATE INDEX IF NOT EXISTS questions_ts ON questions(ts);
CREATE TABLE IF NOT EXISTS votes (
    answer_id TEXT NOT NULL,
    voter TEXT NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('up', 'down')),
    comment TEXT,
    ts REAL NOT NULL,
    PRIMARY KEY (answer_id, voter)
);
CREATE INDEX IF NOT EXISTS votes_ts ON votes(ts);
"""


def db_path(settings) -> Path:
    return Path(settings.state_dir or settings.index_dir) / DB_NAME


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    enable_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


_MARKER = re.compile(r"\[(\d+)\]")


def sources_of(answer: Answer) -> list[dict]:
    """The cited passages as the log keeps them: where they are, not what they say. ``cited``:
    the answer text refers to it with [n] (a stub answer names the stub section this way)."""
    cited = {int(m) for m in _MARKER.findall(answer.answer or "")}
    return [
        {
            "n": c.n, "path": c.path, "lines": [c.line_start, c.line_end], "heading": c.heading,
            "title": c.title, "confidence": c.scores.confidence, "low": c.low_confidence, "cited": c.n in cited,
        }
        for c in answer.citations
    ]


def vector_bytes(vec: np.ndarray | None) -> bytes | None:
    return None if vec is None else np.asarray(vec, dtype=np.float16).tobytes()


def vector_from(blob: bytes | None) -> np.ndarray | None:
    return None if not blob else np.frombuffer(blob, dtype=np.float16).astype(np.float32)


def cached_vector(embedder: Any, text: str) -> np.ndarray | None:
    """The question's vector if the embedder computed it just now (a dictionary lookup)."""
    get = getattr(embedder, "cached", None)
    if get is None:
        return None
    try:
        return get(text)
    except Exception:  # a foreign embedder: the report embeds the question itself
        return None


@dataclass
class VoteResult:
    answer_id: str
    vote: str
    changed: bool  # False when the same voter had already cast the same vote (idempotent)


class UnknownAnswer(KeyError):
    """No answer with this id was logged (or it was purged)."""


class QuestionLog:
    """One per database file and process (see :func:`open_log`); thread-safe."""

    def __init__(self, path: Path, retention_days: int = 90, batch: int = 512, max_queue: int = 20_000):
        self.path = Path(path)
        self.retention_s = retention_days * DAY
        self.batch = batch
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._read = threading.local()
        self._conn = connect(self.path)  # the writer thread's own connection
        self.salt = self._salt()
        self._last_prune = 0.0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="qa-questionlog", daemon=True)
        self._thread.start()

    # ---- recording (hot path: no I/O) ------------------------------------------------------
    def record(self, answer: Answer, channel: str, vector: np.ndarray | None = None) -> None:
        """Queue one answered question; never blocks, never raises."""
        try:
            with self._pending_lock:
                self._pending.add(answer.answer_id)
            self._queue.put_nowait((time.time(), answer, channel[:32], vector))
        except queue.Full:
            with self._pending_lock:
                self._pending.discard(answer.answer_id)
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("question log queue full: %d rows dropped so far", self.dropped)
        except Exception:  # noqa: BLE001 - the log must never break an answer
            log.exception("question log: could not queue a row")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued before this call is written (tests, CLI exit)."""
        if self._closed:
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._queue.put(None)
        self._thread.join(10)

    # ---- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            items = [item]
            while len(items) < self.batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [i for i in items if isinstance(i, tuple)]
            if rows:
                self._write(rows)
            closing = any(i is None for i in items)
            # the hourly prune runs before the waiters are told: once flush() returns, nothing of
            # this batch still touches the file (a prune racing a caller's own delete or update)
            if not closing and time.time() - self._last_prune > 3600:
                self._prune()
            for i in items:
                if isinstance(i, threading.Event):
                    i.set()
            if closing:
                self._conn.close()
                return

    def _row(self, item: tuple) -> tuple:
        ts, a, channel, vec = item
        return (
            a.answer_id, ts, channel, a.question, a.status, float(a.confidence),
            json.dumps(sources_of(a), ensure_ascii=False), a.index.generation, vector_bytes(vec),
        )

    def _write(self, items: list[tuple]) -> None:
        rows = []
        for it in items:
            try:
                rows.append(self._row(it))
            except Exception:  # noqa: BLE001
                log.exception("question log: unreadable answer skipped")
                self.dropped += 1
        for attempt in range(3):
            try:
                with self._conn:
                    self._conn.execute("BEGIN IMMEDIATE")
                    self._conn.executemany(
                        "INSERT OR IGNORE INTO questions (answer_id, ts, channel, question, status, confidence, "
                        "sources, generation, vector) VALUES (?,?,?,?,?,?,?,?,?)",
                        rows,
                    )
                self.written += len(rows)
                break
            except sqlite3.Error as exc:
                if attempt == 2:
                    self.dropped += len(rows)
                    log.error("question log: %d rows lost: %s", len(rows), exc)
                else:
                    time.sleep(0.2 * (attempt + 1))
        with self._pending_lock:
            for it in items:
                self._pending.discard(it[1].answer_id)

    def _prune(self) -> None:
        self._last_prune = time.time()
        try:
            self.purge(before_days=self.retention_s / DAY)
        except sqlite3.Error as exc:
            log.warning("question log: pruning failed: %s", exc)

    # ---- reads and votes (any thread) -----------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._read, "conn", None)
        if c is None:
            c = self._read.conn = connect(self.path)
        return c

    def _salt(self) -> str:
        c = self.conn
        c.execute("INSERT OR IGNORE INTO meta VALUES ('salt', ?)", (secrets.token_hex(16),))
        return c.execute("SELECT value FROM meta WHERE key='salt'").fetchone()[0]

    def hash_identity(self, identity: str) -> str:
        """A salted hash of who someone is (key label, IP, chat user id): votes stay one per
        person without the log learning who they are."""
        return hashlib.sha256((self.salt + "\0" + identity).encode()).hexdigest()[:24]

    def known(self, answer_id: str) -> bool:
        with self._pending_lock:
            if answer_id in self._pending:
                return True
        row = self.conn.execute("SELECT 1 FROM questions WHERE answer_id=?", (answer_id,)).fetchone()
        return row is not None

    def vote(self, answer_id: str, voter: str, vote: str, comment: str | None = None) -> VoteResult:
        """Record ``voter``'s vote on an answer; voting again replaces it (one vote per voter)."""
        if vote not in ("up", "down"):
            raise ValueError("vote must be 'up' or 'down'")
        if not self.known(answer_id):
            raise UnknownAnswer(answer_id)
        with self._pending_lock:
            pending = answer_id in self._pending
        if pending:  # asked a moment ago: its row is on its way; the vote may wait that long
            self.flush(5)
        c = self.conn
        with c:
            c.execute("BEGIN IMMEDIATE")
            old = c.execute("SELECT vote, comment FROM votes WHERE answer_id=? AND voter=?", (answer_id, voter)).fetchone()
            comment = (comment or "").strip() or None
            if old is not None and old[0] == vote and (comment is None or comment == old[1]):
                return VoteResult(answer_id, vote, changed=False)
            c.execute(
                "INSERT INTO votes VALUES (?,?,?,?,?) ON CONFLICT(answer_id, voter) DO UPDATE SET "
                "vote=excluded.vote, comment=COALESCE(excluded.comment, votes.comment), ts=excluded.ts",
                (answer_id, voter, vote, comment, time.time()),
            )
        return VoteResult(answer_id, vote, changed=True)

    def purge(self, before_days: float | None = None, everything: bool = False) -> dict:
        """Delete questions (and their votes) older than ``before_days``, or all of them."""
        c = self.conn
        with c:
            c.execute("BEGIN IMMEDIATE")
            if everything:
                q = c.execute("DELETE FROM questions").rowcount
                v = c.execute("DELETE FROM votes").rowcount
            else:
                cut = time.time() - (before_days if before_days is not None else self.retention_s / DAY) * DAY
                q = c.execute("DELETE FROM questions WHERE ts < ?", (cut,)).rowcount
                v = c.execute(
                    "DELETE FROM votes WHERE ts < ? OR answer_id NOT IN (SELECT answer_id FROM questions)", (cut,)
                ).rowcount
        if everything:
            c.execute("VACUUM")
        return {"questions": q, "votes": v}

    def counts(self) -> dict:
        c = self.conn
        q = c.execute("SELECT count(*), min(ts), max(ts) FROM questions").fetchone()
        v = c.execute("SELECT count(*) FROM votes").fetchone()[0]
        return {"path": str(self.path), "questions": q[0], "votes": v, "oldest": q[1], "newest": q[2]}

    def questions(self, since: float = 0.0) -> Iterable[sqlite3.Row]:
        c = self.conn
        return c.execute(
            "SELECT answer_id, ts, channel, question, status, confidence, sources, generation, vector "
            "FROM questions WHERE ts >= ? ORDER BY ts",
            (since,),
        ).fetchall()

    def votes(self, since: float = 0.0) -> list[tuple]:
        return self.conn.execute(
            "SELECT answer_id, voter, vote, comment, ts FROM votes WHERE ts >= ? ORDER BY ts", (since,)
        ).fetchall()


_logs: dict[Path, QuestionLog] = {}
_logs_lock = threading.Lock()


def open_log(settings, force: bool = False) -> QuestionLog | None:
    """The process's log for these settings, or None when ``QA_QUESTION_LOG=off``.

    One instance per file and process, shared by the HTTP routes and the bot threads.
    ``force`` opens it even when logging is off (``qa log purge``, ``qa gaps``).
    """
    if not settings.question_log and not force:
        return None
    path = db_path(settings).resolve()
    with _logs_lock:
        ql = _logs.get(path)
        if ql is None or ql._closed:
            ql = _logs[path] = QuestionLog(path, settings.question_log_days)
        return ql


def close_logs() -> None:
    with _logs_lock:
        for ql in _logs.values():
            ql.close()
        _logs.clear()


def record_answer(qlog: QuestionLog | None, assistant: Any, answer: Answer, channel: str) -> None:
    """Log ``answer`` with its question's cached vector; a no-op when the log is off."""
    if qlog is None or answer is None:
        return
    emb = getattr(assistant, "embedder", None)
    qlog.record(answer, channel, cached_vector(emb, answer.question) if emb is not None else None)


__all__ = [
    "QuestionLog", "open_log", "close_logs", "record_answer", "UnknownAnswer", "VoteResult", "db_path",
    "vector_from", "CHANNELS",
]
