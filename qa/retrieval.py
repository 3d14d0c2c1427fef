"""Question -> ranked passages: dense (FAISS) and lexical (BM25) fused by rank.

Dense retrieval finds paraphrases; BM25 over bigrams and whole identifiers
finds names, versions and commands the model blurs (``kubectl``, ``1.28``).
The two are mixed by weighted score fusion (see ``fuse``), then the best few
are re-scored by how well their best pair of sentences covers the question.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa import lexical
from qa.chunks import split_sentences
from qa.questions import is_reference_section, is_symptom_section
from qa.config import DEFAULT_CANDIDATES, DEFAULT_DENSE_WEIGHT, DEFAULT_FUSION, DEFAULT_RRF_K, DEFAULT_TOP_K
from qa.store import ChunkRow, IndexReader
from qa.vectors.base import VectorIndex
from qa.vectors.faiss import as_index

METHODS = ("hybrid", "dense", "lexical")
STUB_PENALTY = 0.5
# Re-scoring of the best fused candidates by their best two-sentence window: a
# question usually paraphrases one or two sentences, and among passages of the same
# article the one holding those sentences is the one to cite.  On CMRC 2018 dev
# with the zh-tech corpus as distractors (600-character passages): hit@1 0.962 -> 0.973;
# DRCD dev 0.928 -> 0.953 (bench/quality.py).  Weight 0.6 -> 0.9 with the dense share
# 0.45 -> 0.55 (qa.config): real-question set hit@1 0.705 -> 0.729 (hit@3 0.855 -> 0.886), full
# CMRC dev with distractors 0.9730 -> 0.9745, DRCD dev 0.9532 -> 0.9532, XQuAD zh 0.9529 -> 0.9513
# (hit@3 0.983 -> 0.987), measured in one run.
RERANK_DEPTH = 10
WINDOW_SENTENCES = 2
WINDOW_WEIGHT = 0.9
# A question word the passage's text lacks but its title or headings hold ("Docker" over a
# "基础镜像是什么" section of a Docker article) counts for this share in the window: the
# section is about it even where its sentences do not repeat it.  Real-question set: hit@1
# 0.729 -> 0.735, file hit@1 0.831 -> 0.837; CMRC 2018 dev first 120 paragraphs: hit@1 unchanged.
HEADING_WINDOW_SHARE = 0.3
# A troubleshooting page that files each problem as "现象" (symptom) / "原因" / "解决方法": the
# question describes the symptom, so the symptom section is what matches, but its siblings
# answer.  They take its place in the ranking (in document order), the symptom right after.
SIBLINGS_AFTER_SYMPTOM = 2


@dataclass
class Hit:
    chunk: ChunkRow
    fused: float
    dense: float | None = None
    lexical: float | None = None
    coverage: float = 0.0  # IDF-weighted share of question tokens found in the passage
    window: float = 0.0  # the same, for the passage's best window of two sentences
    confidence: float = 0.0
    generation: str | None = None  # the index generation it was found in (an answer reports that one)


@dataclass
class Query:
    text: str
    tokens: tuple[str, ...]  # bigrams + identifiers, for BM25
    terms: tuple[tuple[str, float], ...]  # content words with IDF, for coverage and sentences


def make_query(text: str) -> Query:
    return Query(text, lexical.query_tokens(text), lexical.question_terms(text))


def coverage(query: Query, text: str) -> float:
    return lexical.term_coverage(query.terms, lexical.fold(text))


def heading_only_coverage(query: Query, folded_text: str, folded_headings: str) -> float:
    """IDF share of the question's terms that the headings hold and the text does not."""
    with_headings = lexical.term_coverage(query.terms, f"{folded_text}\n{folded_headings}")
    return with_headings - lexical.term_coverage(query.terms, folded_text)


def window_coverage(query: Query, folded_text: str, size: int = WINDOW_SENTENCES) -> float:
    """Best coverage of the question's terms by ``size`` consecutive sentences."""
    if not query.terms:
        return 0.0
    sents = [folded_text[a:b] for a, b in split_sentences(folded_text)]
    if len(sents) <= size:
        return lexical.term_coverage(query.terms, folded_text)
    return max(
        lexical.term_coverage(query.terms, "".join(sents[i : i + size])) for i in range(len(sents) - size + 1)
    )


def fuse(
    dense: list[tuple[int, float]],
    lex: list[tuple[int, float]],
    fusion: str = DEFAULT_FUSION,
    dense_weight: float = DEFAULT_DENSE_WEIGHT,
    rrf_k: int = DEFAULT_RRF_K,
) -> dict[int, float]:
    """Combine the two rankings.

    ``weighted`` (default) keeps score magnitudes: cosine is rescaled to 0..1 between
    the weakest and the strongest dense candidate, BM25 is divided by the best
    BM25 score, and the two are mixed.  On CMRC 2018 dev (our chunker, 3219
    questions) it gives hit@1 0.942 against 0.896 for reciprocal rank fusion,
    which throws away how much better the best lexical match is.
    """
    fused: dict[int, float] = {}
    if fusion == "rrf":
        for ranked in (dense, lex):
            for rank, (cid, _) in enumerate(ranked):
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (rrf_k + rank + 1)
        return fused
    if fusion != "weighted":
        raise ValueError(f"unknown fusion {fusion!r}; use weighted or rrf")
    wd = dense_weight if lex else 1.0
    wl = (1.0 - dense_weight) if dense else 1.0
    if dense:
        hi, lo = dense[0][1], dense[-1][1]
        span = (hi - lo) or 1.0
        for cid, sc in dense:
            fused[cid] = wd * ((sc - lo) / span if len(dense) > 1 else 1.0)
    if lex:
        top = lex[0][1] or 1.0
        for cid, sc in lex:
            fused[cid] = fused.get(cid, 0.0) + wl * sc / top
    return fused


def _remedies_first(reader: VectorIndex, hits: list[Hit]) -> list[Hit]:
    """Each symptom section among ``hits`` is preceded by the sections after it under the same
    problem heading ("原因", "解决方法").  Passages of one document are stored with consecutive
    ids in reading order; a neighbour that is not such a sibling is simply not used."""
    symptoms = [h for h in hits if is_symptom_section(h.chunk.heading)]
    if not symptoms:
        return hits
    wanted = sorted({h.chunk.id + d for h in symptoms for d in range(1, SIBLINGS_AFTER_SYMPTOM + 1)})
    rows = reader.chunks(wanted)
    found = {h.chunk.id: h for h in hits}
    out: list[Hit] = []
    placed: set[int] = set()
    for h in hits:
        if h.chunk.id in placed:
            continue
        if is_symptom_section(h.chunk.heading):
            parent = h.chunk.heading.rsplit(" > ", 1)[0] + " > "
            for d in range(1, SIBLINGS_AFTER_SYMPTOM + 1):
                row = rows.get(h.chunk.id + d)
                if (row is None or row.doc_path != h.chunk.doc_path or row.collection != h.chunk.collection
                        or not row.heading.startswith(parent) or is_symptom_section(row.heading) or row.is_stub):
                    break
                if row.id in placed:
                    continue
                # a sibling found on its own keeps its scores; one brought in borrows the symptom's
                sib = found.get(row.id) or Hit(row, h.fused, h.dense, h.lexical)
                sib.fused = max(sib.fused, h.fused)
                out.append(sib)
                placed.add(row.id)
        out.append(h)
        placed.add(h.chunk.id)
    return out


def search(
    reader: VectorIndex | IndexReader,
    qvec: np.ndarray | None,
    query: Query,
    k: int = DEFAULT_TOP_K,
    method: str = "hybrid",
    candidates: int = DEFAULT_CANDIDATES,
    rrf_k: int = DEFAULT_RRF_K,
    collection: str | None = None,
    fusion: str = DEFAULT_FUSION,
    dense_weight: float = DEFAULT_DENSE_WEIGHT,
) -> list[Hit]:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    # the store applies the collection filter inside both searches (qa.vectors): the true
    # top ``candidates`` of that collection, not what survives an over-fetch
    reader = as_index(reader)
    dense = reader.dense(qvec, candidates, collection) if method != "lexical" and qvec is not None else []
    lex = reader.lexical(query.tokens, candidates, collection) if method != "dense" else []

    fused = fuse(dense, lex, fusion, dense_weight, rrf_k)
    dscore = dict(dense)
    lscore = dict(lex)
    # only the best few need their rows (stubs are demoted, so fetch some spares)
    best = sorted(fused, key=lambda c: -fused[c])[: max(2 * max(k, 1) + 5, RERANK_DEPTH)]
    rows = reader.chunks(best)
    hits = []
    for cid in best:
        f = fused[cid]
        row = rows.get(cid)
        if row is None:
            continue
        if row.is_stub:
            f *= STUB_PENALTY
        hits.append(Hit(row, f, dscore.get(cid), lscore.get(cid)))
    hits.sort(key=lambda h: -h.fused)
    for h in hits[:RERANK_DEPTH]:
        text = lexical.fold(h.chunk.text)
        h.window = window_coverage(query, text) + HEADING_WINDOW_SHARE * heading_only_coverage(
            query, text, lexical.fold(f"{h.chunk.title} {h.chunk.heading}"))
        h.fused += WINDOW_WEIGHT * h.window
    # a "参考资料" section holds only links (whose titles repeat the question): it is never the
    # passage that answers, so it goes after every written one
    hits.sort(key=lambda h: (is_reference_section(h.chunk.heading), -h.fused))
    hits = _remedies_first(reader, hits[: max(k, 1)])[: max(k, 1)]
    for h in hits:
        h.coverage = coverage(query, " ".join([h.chunk.title, h.chunk.heading, h.chunk.text]))
    return hits
