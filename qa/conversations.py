"""Conversations kept server-side: the earlier turns a follow-up question is resolved against.

Why this shape:

* one SQLite file *beside* the index generations (``<index_dir>/conversations.sqlite``, or
  ``QA_CONVERSATIONS_DB``), never inside one: ``qa ingest`` publishes a new generation and
  deletes old ones, and a conversation must survive that;
* WAL mode, a busy timeout and one short transaction per read or write, one connection per
  thread: the server answers on many worker threads and several processes may share the file;
* ids are ``cv_`` + 24 characters from :func:`secrets.token_urlsafe` (144 random bits): one
  client cannot reach another's conversation by guessing, and nothing lists them.  An id of
  another form is a client error (:class:`BadConversationId`); an unknown or expired id of the
  right form starts a new conversation, and the caller is told so;
* each conversation keeps at most ``QA_CONVERSATION_MAX_TURNS`` turns (older ones are dropped:
  resolution only looks a few turns back) and expires ``QA_CONVERSATION_TTL_S`` after its last
  turn; expired rows are purged now and then on the way;
* chat platforms have their own conversation keys (a Slack thread, a DingTalk one-to-one chat):
  :meth:`ConversationStore.for_key` maps a platform key to a conversation id, storing only a
  SHA-256 of the key, so the file holds no platform user or chat ids.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from qa.followup import Resolution, Turn
from qa.wal import enable_wal

ID_PREFIX = "cv_"
ID_RE = re.compile(r"^cv_[A-Za-z0-9_-]{24}$")
ID_HELP = "a conversation_id is 'cv_' followed by 24 letters, digits, '-' or '_', as returned by /ask"
PURGE_EVERY_S = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    at REAL NOT NULL,
    question TEXT NOT NULL,
    searched TEXT,
    resolved TEXT,
    titles TEXT NOT NULL DEFAULT '[]',
    answered INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (conversation, n)
);
CREATE TABLE IF NOT EXISTS platform_keys (
    key_hash TEXT PRIMARY KEY,
    conversation TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS platform_keys_updated ON platform_keys(updated);
"""


class BadConversationId(ValueError):
    """The id is not of a form this server issues (a client error, unlike an unknown id)."""


def new_id() -> str:
    return ID_PREFIX + secrets.token_urlsafe(18)


def check_id(value: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise BadConversationId(f"conversation_id {str(value)[:40]!r} is not valid: {ID_HELP}; omit it to start a new one")
    return value


@dataclass
class Opened:
    """The conversation a question belongs to, as found (or started) for it."""

    id: str
    history: list[Turn]
    new: bool
    restarted: bool = False  # an id was given but was unknown or had expired

    @property
    def notice(self) -> str | None:
        if self.restarted:
            return "conversation_id was unknown or had expired; a new conversation was started"
        return None


class ConversationStore:
    """Thread-safe access to the conversations file (one SQLite connection per thread)."""

    def __init__(self, path: str | Path, ttl_s: float = 3600, max_turns: int = 20):
        self.ttl_s = float(ttl_s)
        self.max_turns = int(max_turns)
        self._memory = str(path) == ":memory:"
        if self._memory:  # one private in-memory database shared by this store's threads
            self.path = f"file:qa-conversations-{uuid.uuid4().hex}?mode=memory&cache=shared"
        else:
            self.path = str(path)
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._last_purge = 0.0
        self._keep = self._connect() if self._memory else None  # keeps the memory database alive
        self._db().executescript(SCHEMA)  # idempotent; executescript manages its own transaction

    @classmethod
    def open(cls, settings) -> "ConversationStore":
        path = settings.conversations_db or Path(settings.index_dir) / "conversations.sqlite"
        return cls(path, settings.conversation_ttl_s, settings.conversation_max_turns)

    # ---- connections -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None, uri=self._memory, check_same_thread=False)
        if not self._memory:
            enable_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection, write: bool):
            self.db, self.write = db, write

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
            return self.db

        def __exit__(self, exc_type, *_):
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self, write: bool = True) -> "_Tx":
        return self._Tx(self._db(), write)

    # ---- conversations -----------------------------------------------------------------
    def open_conversation(self, conversation_id: str | None) -> Opened:
        """The conversation ``conversation_id`` with its turns, or a new one.

        Raises :class:`BadConversationId` for an id of the wrong form; an unknown or expired id
        gives a new conversation with ``restarted=True``."""
        now = time.time()
        self._maybe_purge(now)
        if conversation_id is not None:
            check_id(conversation_id)
            history = self.history(conversation_id, now)
            if history is not None:
                return Opened(conversation_id, history, new=False)
        # a new conversation is written with its first turn (one write per question)
        return Opened(new_id(), [], new=True, restarted=conversation_id is not None)

    def history(self, conversation_id: str, now: float | None = None) -> list[Turn] | None:
        """The turns (oldest first), or None when the conversation is unknown or expired."""
        now = now or time.time()
        with self._tx(write=False) as db:
            row = db.execute("SELECT updated FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            if row is None or now - row[0] > self.ttl_s:
                return None
            rows = db.execute(
                "SELECT question, searched, titles, answered, resolved FROM turns WHERE conversation = ? ORDER BY n",
                (conversation_id,),
            ).fetchall()
        return [Turn(q, s, json.loads(t), bool(a), r) for q, s, t, a, r in rows]

    def add_turn(self, conversation_id: str, turn: Turn) -> int:
        """Append a turn (keeping the last ``max_turns``); returns its 1-based number."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO conversations (id, created, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET updated = excluded.updated",
                (conversation_id, now, now),
            )
            n = db.execute("SELECT COALESCE(MAX(n), 0) + 1 FROM turns WHERE conversation = ?", (conversation_id,)).fetchone()[0]
            db.execute(
                "INSERT INTO turns (conversation, n, at, question, searched, resolved, titles, answered) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, n, now, turn.question, turn.searched, turn.resolved,
                 json.dumps(turn.titles, ensure_ascii=False), int(turn.answered)),
            )
            db.execute("DELETE FROM turns WHERE conversation = ? AND n <= ?", (conversation_id, n - self.max_turns))
        return n

    def delete(self, conversation_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # ---- platform keys (chat bots) ------------------------------------------------------
    @staticmethod
    def _hash(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def for_key(self, key: str) -> str | None:
        """The live conversation id for a platform key (thread, chat, user), or None."""
        now = time.time()
        with self._tx(write=False) as db:
            row = db.execute("SELECT conversation, updated FROM platform_keys WHERE key_hash = ?", (self._hash(key),)).fetchone()
        if row is None or now - row[1] > self.ttl_s:
            return None
        return row[0]

    def bind_key(self, key: str, conversation_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO platform_keys (key_hash, conversation, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(key_hash) DO UPDATE SET conversation = excluded.conversation, updated = excluded.updated",
                (self._hash(key), conversation_id, time.time()),
            )

    def forget_key(self, key: str) -> None:
        """The platform key's next message starts a new conversation ("/new" in a chat)."""
        with self._tx() as db:
            db.execute("DELETE FROM platform_keys WHERE key_hash = ?", (self._hash(key),))

    # ---- housekeeping ---------------------------------------------------------------------
    def _maybe_purge(self, now: float) -> None:
        if now - self._last_purge < PURGE_EVERY_S:
            return
        self._last_purge = now
        self.purge(now)

    def purge(self, now: float | None = None) -> int:
        """Delete expired conversations and platform keys; returns how many conversations went."""
        cutoff = (now or time.time()) - self.ttl_s
        with self._tx() as db:
            gone = db.execute("DELETE FROM conversations WHERE updated < ?", (cutoff,)).rowcount
            db.execute("DELETE FROM platform_keys WHERE updated < ?", (cutoff,))
        return gone

    def count(self) -> int:
        with self._tx(write=False) as db:
            return db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]


__all__ = ["Conversation", "ConversationStore", "Opened", "Pending", "BadConversationId", "check_id", "new_id", "ID_RE"]


class Conversation:
    """A conversation for the Python API: each ``ask`` continues it (follow-ups are resolved).

        conv = bot.conversation()
        conv.ask("什么是容器镜像？")
        conv.ask("它解决了什么问题？").searched   # '容器镜像解决了什么问题？'

    ``conv.id`` is set after the first answer (and replaced when the conversation had expired);
    ``bot.conversation(id)`` continues one started elsewhere (e.g. over HTTP).
    """

    def __init__(self, assistant, conversation_id: str | None = None):
        if conversation_id is not None:
            check_id(conversation_id)
        self.assistant = assistant
        self.id = conversation_id

    def ask(self, question: str, **kw):
        return self.assistant.ask(question, conversation=self, **kw)

    def turns(self) -> list[Turn]:
        if self.id is None:
            return []
        return self.assistant.conversations.history(self.id) or []

    def __repr__(self) -> str:
        return f"Conversation({self.id!r})"


@dataclass
class Pending:
    """A question on its way through a conversation: found, resolved, not yet answered."""

    question: str
    opened: Opened
    resolution: Resolution
    handle: Conversation | None = None

