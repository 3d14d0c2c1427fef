"""The on-disk index: SQLite (documents, passages, lexical index, vectors) + FAISS.

Every write produces a new *generation* folder; the ``CURRENT`` file names the
one that is served and is replaced atomically (``os.replace``) only after the new
generation is complete and fsync'ed.  A reader therefore sees either the old or
the new index, never a half-written one, and a crashed ingest leaves only a
``*.tmp`` folder that the next run deletes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1
CURRENT = "CURRENT"
DB_NAME = "qa.sqlite"
FAISS_NAME = "vectors.faiss"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    collection TEXT NOT NULL DEFAULT 'default',
    path TEXT NOT NULL,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    content_hash TEXT NOT NULL,
    encoding TEXT,
    size INTEGER,
    mtime REAL,
    n_chunks INTEGER NOT NULL DEFAULT 0,
    ingested_at REAL NOT NULL,
    UNIQUE (collection, path)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    line_start INTEGER NOT NULL,
    line_end INTEGER NOT NULL,
    is_stub INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'text',
    embed_hash TEXT NOT NULL,
    vec BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_embed ON chunks(embed_hash);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    tokens, tokenize = "unicode61 remove_diacritics 0 tokenchars '_.-+#/:'"
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    stats TEXT NOT NULL DEFAULT '{}'
);
"""


def fault_point(name: str) -> None:
    """Crash-safety tests set QA_FAULT=<name> to SIGKILL the process at that step."""
    if os.environ.get("QA_FAULT") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


class IndexNotFound(FileNotFoundError):
    """No built index where one was expected; the message says how to build it."""


class IndexMismatch(RuntimeError):
    """The index was built with another model than the one asked to query it."""


def current_generation(index_dir: Path) -> str | None:
    try:
        name = (index_dir / CURRENT).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return name if name and (index_dir / name / DB_NAME).exists() else None


def generation_number(name: str | None) -> int:
    return int(name.split("-")[1]) if name else 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        # immutable: generations never change once published, so SQLite can skip locking
        uri = f"file:{path}?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=OFF")  # the whole file is a throw-away until published
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA foreign_keys=ON")
    conn.row_factory = sqlite3.Row
    return conn


def remove_stale_temp(index_dir: Path) -> list[str]:
    """Delete the temp folders of interrupted ingests (call only while holding the ingest lock)."""
    gone = []
    for stale in index_dir.glob("gen-*.tmp*"):
        shutil.rmtree(stale, ignore_errors=True)
        gone.append(stale.name)
    return gone


class GenerationWriter:
    """Builds the next generation in a temp folder and publishes it atomically."""

    def __init__(self, index_dir: Path):
        self.index_dir = index_dir
        index_dir.mkdir(parents=True, exist_ok=True)
        for stale in index_dir.glob("gen-*.tmp*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.previous = current_generation(index_dir)
        self.number = max(
            [generation_number(self.previous)]
            + [generation_number(p.name) for p in index_dir.glob("gen-[0-9]*") if p.name[4:].isdigit()]
        ) + 1
        self.name = f"gen-{self.number:06d}"
        self.tmp = index_dir / f"{self.name}.tmp-{os.getpid()}"
        self.tmp.mkdir()
        self.db_path = self.tmp / DB_NAME

    def start(self, copy_previous: bool) -> sqlite3.Connection:
        if copy_previous and self.previous:
            src = connect(self.index_dir / self.previous / DB_NAME, readonly=True)
            dst = sqlite3.connect(self.db_path)
            src.backup(dst)
            src.close()
            dst.close()
        conn = connect(self.db_path)
        conn.executescript(SCHEMA)
        return conn

    def publish(self, conn: sqlite3.Connection, vectors: tuple[np.ndarray, np.ndarray] | None = None) -> str:
        """Write FAISS, fsync everything, rename the folder, then flip CURRENT."""
        import faiss

        from qa.vectors.faiss_build import build_index

        conn.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (self.name,))
        conn.commit()
        ids, mat = vectors if vectors is not None else read_vectors(conn)
        dim = int(conn.execute("SELECT value FROM meta WHERE key='dim'").fetchone()[0])
        index = build_index(mat.reshape(-1, dim), ids)
        conn.close()
        fault_point("before-faiss")
        faiss.write_index(index, str(self.tmp / FAISS_NAME))
        for f in self.tmp.iterdir():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(self.tmp)
        fault_point("before-rename")
        final = self.index_dir / self.name
        os.rename(self.tmp, final)
        fault_point("before-current")
        pointer = self.index_dir / f".{CURRENT}.tmp-{os.getpid()}"
        pointer.write_text(self.name + "\n")
        with open(pointer, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(pointer, self.index_dir / CURRENT)
        _fsync_dir(self.index_dir)
        self._prune(keep={self.name, self.previous})
        return self.name

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _prune(self, keep: set[str | None]) -> None:
        # The previous generation stays so that servers still reading it finish their requests.
        for p in self.index_dir.glob("gen-[0-9]*"):
            if p.name not in keep and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


def read_vectors(conn: sqlite3.Connection) -> tuple[np.ndarray, np.ndarray]:
    rows = conn.execute("SELECT id, vec FROM chunks ORDER BY id").fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    mat = (
        np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        if rows
        else np.zeros(0, dtype=np.float32)
    )
    return ids, mat


@dataclass
class ChunkRow:
    id: int
    key: str
    doc_path: str
    collection: str
    title: str
    doc_meta: dict
    heading: str
    text: str
    start: int
    end: int
    line_start: int
    line_end: int
    is_stub: bool
    kind: str
    source: str


def map_faiss(path: Path):
    """The FAISS index with its vectors memory-mapped, not copied: a generation is never
    written after it is published, so every process serving it (uvicorn workers, the CLI)
    shares one copy in the page cache (5 readers of a 5,422-passage index: 1.7 MB of RSS
    instead of 42 MB).  Unlinking a mapped file is safe on POSIX.  Index types that cannot
    be mapped are read normally."""
    import faiss

    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    except (RuntimeError, AttributeError):
        return faiss.read_index(str(path))


class IndexReader:
    """A published generation opened for queries; cheap to share across threads."""

    def __init__(self, index_dir: Path):

        self.index_dir = index_dir
        name = current_generation(index_dir)
        if name is None:
            raise IndexNotFound(
                f"no index in {index_dir}/ yet: build it with `qa ingest corpus/ --index {index_dir}`"
            )
        self.generation = name
        self.path = index_dir / name
        self._local = threading.local()
        conn = self.conn
        self.meta = {r[0]: r[1] for r in conn.execute("SELECT key, value FROM meta")}
        self.faiss = map_faiss(self.path / FAISS_NAME)
        self.n_chunks = int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
        self.n_docs = int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
        self.opened_at = time.time()

    @property
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = connect(self.path / DB_NAME, readonly=True)
        return c

    @property
    def model(self) -> str:
        return self.meta.get("model", "?")

    @property
    def model_identity(self) -> str:
        return self.meta.get("model_identity", "?")

    def is_stale(self) -> bool:
        """True when a newer generation has been published since this one was opened."""
        return current_generation(self.index_dir) not in (None, self.generation)

    def dense(self, qvec: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self.n_chunks == 0:
            return []
        scores, ids = self.faiss.search(qvec.reshape(1, -1).astype(np.float32), min(k, self.n_chunks))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def lexical(self, match: str, k: int) -> list[tuple[int, float]]:
        if not match:
            return []
        rows = self.conn.execute(
            "SELECT rowid, -bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
            "ORDER BY bm25(chunks_fts) LIMIT ?",
            (match, k),
        ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def doc_freqs(self, toks: list[str] | tuple[str, ...]) -> dict[str, int]:
        if not toks:
            return {}
        marks = ",".join("?" * len(toks))
        rows = self.conn.execute(
            f"SELECT term, doc FROM chunks_vocab WHERE term IN ({marks})", list(toks)
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def stub_ids(self) -> list[int]:
        return [int(r[0]) for r in self.conn.execute("SELECT id FROM chunks WHERE is_stub = 1 ORDER BY id")]

    def chunks(self, ids: list[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            "SELECT c.id, c.key, d.path, d.collection, d.title, d.meta, c.heading, c.text, c.start, "
            "c.end, c.line_start, c.line_end, c.is_stub, c.kind, d.source "
            f"FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})",
            list(ids),
        ).fetchall()
        return {
            r[0]: ChunkRow(
                r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8], r[9], r[10],
                r[11], bool(r[12]), r[13], r[14],
            )
            for r in rows
        }

    def neighbours(self, chunk_id: int) -> list[int]:
        row = self.conn.execute("SELECT doc_id, ord FROM chunks WHERE id=?", (chunk_id,)).fetchone()
        if not row:
            return []
        rows = self.conn.execute(
            "SELECT id FROM chunks WHERE doc_id=? AND ord IN (?, ?)", (row[0], row[1] - 1, row[1] + 1)
        ).fetchall()
        return [r[0] for r in rows]

    def collection_ids(self, collection: str) -> set[int]:
        rows = self.conn.execute(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.collection=?",
            (collection,),
        ).fetchall()
        return {r[0] for r in rows}

    def documents(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT collection, path, title, n_chunks, ingested_at, meta FROM documents ORDER BY collection, path"
        ).fetchall()
        return [
            {
                "collection": r[0],
                "path": r[1],
                "title": r[2],
                "chunks": r[3],
                "ingested_at": r[4],
                "url": json.loads(r[5]).get("url"),
            }
            for r in rows
        ]

    def info(self) -> dict:
        """What `qa stats`, `/stats` and the Python API report about this generation."""
        return {
            "generation": self.generation,
            "model": self.model,
            "model_identity": self.model_identity,
            "documents": self.n_docs,
            "chunks": self.n_chunks,
            "index_bytes": self.size_bytes(),
            "chunker": self.meta.get("chunker"),
            "updated_at": float(self.meta.get("updated_at", 0) or 0),
            "last_ingest": self.last_run(),
        }

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def last_run(self) -> dict | None:
        row = self.conn.execute(
            "SELECT started_at, finished_at, stats FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if not row:
            return None
        return {"started_at": row[0], "finished_at": row[1], **json.loads(row[2])}
