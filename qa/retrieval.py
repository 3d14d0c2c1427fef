"""Question -> ranked passages: dense (FAISS) and lexical (BM25) fused by rank.

Dense retrieval finds paraphrases; BM25 over bigrams and whole identifiers
finds names, versions and commands the model blurs (``kubectl``, ``1.28``).
Reciprocal rank fusion needs no score calibration between the two, which is
why it is the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qa import lexical
from qa.store import ChunkRow, IndexReader

METHODS = ("hybrid", "dense", "lexical")
STUB_PENALTY = 0.5


@dataclass
class Hit:
    chunk: ChunkRow
    fused: float
    dense: float | None = None
    lexical: float | None = None
    coverage: float = 0.0  # IDF-weighted share of question tokens found in the passage
    confidence: float = 0.0


@dataclass
class Query:
    text: str
    tokens: tuple[str, ...]
    idf: dict[str, float]


def make_query(reader: IndexReader, text: str) -> Query:
    toks = lexical.query_tokens(text)
    dfs = reader.doc_freqs(toks)
    n = max(reader.n_chunks, 1)
    idf = {t: math.log(1 + (n - dfs.get(t, 0) + 0.5) / (dfs.get(t, 0) + 0.5)) for t in toks}
    return Query(text, toks, idf)


def coverage(query: Query, text: str) -> float:
    """Share of the question's IDF mass whose tokens occur in ``text``."""
    total = sum(query.idf.values())
    if not total:
        return 0.0
    present = set(lexical.tokens(text))
    return sum(w for t, w in query.idf.items() if t in present) / total


def search(
    reader: IndexReader,
    qvec: np.ndarray | None,
    query: Query,
    k: int = 5,
    method: str = "hybrid",
    candidates: int = 50,
    rrf_k: int = 60,
    collection: str | None = None,
) -> list[Hit]:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    depth = candidates if collection is None else candidates * 4
    dense = reader.dense(qvec, depth) if method != "lexical" and qvec is not None else []
    lex = reader.lexical(lexical.fts_query(query.tokens), depth) if method != "dense" else []
    allowed = reader.collection_ids(collection) if collection else None
    if allowed is not None:
        dense = [x for x in dense if x[0] in allowed]
        lex = [x for x in lex if x[0] in allowed]

    fused: dict[int, float] = {}
    dscore = dict(dense)
    lscore = dict(lex)
    for ranked in (dense, lex):
        for rank, (cid, _) in enumerate(ranked):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (rrf_k + rank + 1)
    rows = reader.chunks(list(fused))
    hits = []
    for cid, f in fused.items():
        row = rows.get(cid)
        if row is None:
            continue
        if row.is_stub:
            f *= STUB_PENALTY
        hits.append(Hit(row, f, dscore.get(cid), lscore.get(cid)))
    hits.sort(key=lambda h: -h.fused)
    hits = hits[: max(k, 1)]
    for h in hits:
        h.coverage = coverage(query, " ".join([h.chunk.title, h.chunk.heading, h.chunk.text]))
    return hits
