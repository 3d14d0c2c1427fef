"""The default store: a published FAISS + SQLite generation folder (``qa.store.IndexReader``).

Only the collection filter is new: instead of over-fetching and dropping other
collections' passages, FAISS searches with an id selector and FTS5 joins on the
collection, so a filtered search returns the true top ``k`` of that collection.
Everything else is the reader's own (attributes such as ``conn`` and ``meta`` pass through).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from qa import lexical
from qa.store import IndexReader


class FaissIndex:
    def __init__(self, reader: IndexReader):
        self.reader = reader
        self._selectors: dict[str, tuple[np.ndarray, object]] = {}
        self._sel_lock = threading.Lock()

    @classmethod
    def open(cls, index_dir: Path) -> "FaissIndex":
        return cls(IndexReader(Path(index_dir)))

    def __getattr__(self, name: str):
        # generation, n_chunks, meta, conn, info(), documents(), is_stale(), ...
        return getattr(self.reader, name)

    def ping(self) -> None:
        return None

    def dense(self, qvec: np.ndarray, k: int, collection: str | None = None) -> list[tuple[int, float]]:
        if collection is None:
            return self.reader.dense(qvec, k)
        ids, sel = self._selector(collection)
        if not len(ids):
            return []
        import faiss

        scores, found = self.reader.faiss.search(
            qvec.reshape(1, -1).astype(np.float32), min(k, len(ids)), params=faiss.SearchParameters(sel=sel)
        )
        return [(int(i), float(s)) for i, s in zip(found[0], scores[0]) if i >= 0]

    def _selector(self, collection: str):
        with self._sel_lock:
            hit = self._selectors.get(collection)
            if hit is None:
                import faiss

                ids = np.array(sorted(self.reader.collection_ids(collection)), dtype=np.int64)
                # the selector points into ``ids``: both are kept together for the generation's life
                sel = faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))
                hit = self._selectors[collection] = (ids, sel)
            return hit

    def lexical(self, tokens: Sequence[str], k: int, collection: str | None = None) -> list[tuple[int, float]]:
        match = lexical.fts_query(tuple(tokens))
        if collection is None:
            return self.reader.lexical(match, k)
        if not match:
            return []
        rows = self.reader.conn.execute(
            "SELECT f.rowid, -bm25(chunks_fts) AS s FROM chunks_fts f JOIN chunks c ON c.id = f.rowid "
            "JOIN documents d ON d.id = c.doc_id WHERE chunks_fts MATCH ? AND d.collection = ? "
            "ORDER BY bm25(chunks_fts) LIMIT ?",
            (match, collection, k),
        ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]


def as_index(reader) -> "FaissIndex | object":
    """A store for ``qa.retrieval.search``: a bare ``IndexReader`` (older callers) is wrapped."""
    return FaissIndex(reader) if isinstance(reader, IndexReader) else reader
