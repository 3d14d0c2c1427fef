"""Ranked passages -> a short answer made of cited sentences, or an honest "not covered".

The answer is extractive: the sentences of the best passages that share the most
(IDF-weighted) vocabulary with the question, in reading order, each group
followed by the marker of the passage it came from.  Nothing is paraphrased, so
every claim can be checked against its citation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qa import lexical
from qa.chunks import split_sentences
from qa.retrieval import Hit, Query

NOT_COVERED = "文章中没有找到这个问题的答案（The articles do not cover this question）。"
# calibrated on CMRC 2018 dev (answerable) vs XQuAD zh questions against a CMRC index
# (unanswerable); see bench/quality.py.  Weights for a logistic model of relevance.
CONF_BIAS = -17.0
CONF_DENSE = 16.0
CONF_COVERAGE = 6.0


def confidence(hit: Hit) -> float:
    """Calibrated 0..1 relevance from dense cosine and lexical coverage."""
    d = hit.dense if hit.dense is not None else 0.75
    z = CONF_BIAS + CONF_DENSE * d + CONF_COVERAGE * hit.coverage
    return 1 / (1 + math.exp(-z))


@dataclass
class Sentence:
    hit_index: int
    start: int  # offset within the passage text
    end: int
    text: str
    score: float = 0.0


def display(sentence: str) -> str:
    """A sentence as shown in the answer: hard line wraps joined (no space next to CJK)."""
    lines = [ln.strip() for ln in sentence.split("\n")]
    out = lines[0]
    for ln in lines[1:]:
        if not ln:
            continue
        out += ln if (out and not out[-1].isascii()) or not ln[0].isascii() else " " + ln
    return out


# Sentence selection knobs, measured on CMRC 2018 dev (3219 questions, 600-character
# passages, zh-tech-corpus as distractors; bench/quality.py): answer-hit 0.912 at a mean of
# 198 characters with a 280-character budget, 0.859 at 117 with a 145 budget.  No length
# penalty: among sentences that match the question equally, the earlier one (reading order
# of the best passage) wins, which beat preferring the shorter one (0.846 at 118).
RANK_DECAY = 1.0  # weight of passage i is 1 / (1 + RANK_DECAY * i)
MIN_RATIO = 0.2  # sentences scoring below this share of the best are never added
LEN_PENALTY = 0.0
BIGRAM_WEIGHT = 0.0


LOCAL_IDF = True


def _rescore_local(query: Query, cands: list[Sentence], rank_weights: dict[int, float]) -> None:
    """Re-weight question terms by how rare they are among the candidate sentences.

    The question's topic (the article's subject) occurs in nearly every sentence
    of the right passage and says nothing about *which* sentence answers; the
    words that occur in few candidates do.  This is IDF computed over the pool.
    """
    folded = [lexical.fold(c.text) for c in cands]
    n = len(cands)
    weights = []
    for t, w in query.terms:
        if not w:
            continue
        df = sum(1 for f in folded if t in f or (t in lexical.ALIASES and lexical.ALIASES[t] in f))
        if df:
            weights.append((t, w * math.log(1 + n / df)))
    terms = tuple(weights)
    for c, f in zip(cands, folded):
        hit = lexical.matched_weight(terms, f)
        c.score = hit / (1.0 + LEN_PENALTY * math.log1p(len(c.text))) * rank_weights[c.hit_index]


def score_sentence(query: Query, text: str) -> float:
    folded = lexical.fold(text)
    hit = lexical.matched_weight(query.terms, folded)
    if BIGRAM_WEIGHT:
        toks = set(lexical.tokens(folded, folded=True))
        qt = [t for t in query.tokens if not lexical.is_question_word(t)]
        if qt:
            hit += BIGRAM_WEIGHT * 10 * sum(t in toks for t in qt) / len(qt)
    # mild length normalisation: long sentences should not win only by being long
    return hit / (1.0 + LEN_PENALTY * math.log1p(len(text)))


def compose(
    query: Query,
    hits: list[Hit],
    budget: int = 300,
    max_passages: int = 3,
    usable: list[bool] | None = None,
) -> tuple[str, dict[int, list[list[int]]]]:
    """Return the answer text and, per hit index, the quoted [start, end) ranges.

    ``usable[i]`` False keeps hit i out of the answer (but its number stays i+1,
    so markers always match the citation list)."""
    if not hits:
        return "", {}
    cands: list[Sentence] = []
    for hi, h in enumerate(hits[:max_passages]):
        if usable is not None and not usable[hi]:
            continue
        rank_weight = 1.0 / (1 + RANK_DECAY * hi)
        for a, b in split_sentences(h.chunk.text):
            t = h.chunk.text[a:b]
            if t.lstrip().startswith(("```", "~~~", "|")):
                continue  # code and tables are shown in the citation, not flattened into prose
            cands.append(Sentence(hi, a, b, t, score_sentence(query, t) * rank_weight))
    if not cands:
        return "", {}
    if LOCAL_IDF:
        _rescore_local(query, cands, rank_weights={hi: 1.0 / (1 + RANK_DECAY * hi) for hi in range(len(hits))})
    best = max(c.score for c in cands)
    chosen: list[Sentence] = []
    used = 0
    for c in sorted(cands, key=lambda c: -c.score):
        if chosen and c.score < MIN_RATIO * best:
            break
        length = len(c.text)
        if used + length > budget:
            if not chosen:
                c = Sentence(c.hit_index, c.start, c.start + budget - 1, c.text[: budget - 1] + "…", c.score)
                chosen.append(c)
                break
            continue
        chosen.append(c)
        used += length
    chosen.sort(key=lambda c: (c.hit_index, c.start))
    parts: list[str] = []
    highlights: dict[int, list[list[int]]] = {}
    for i, c in enumerate(chosen):
        parts.append(display(c.text))
        highlights.setdefault(c.hit_index, []).append([c.start, c.end])
        nxt = chosen[i + 1] if i + 1 < len(chosen) else None
        if nxt is None or nxt.hit_index != c.hit_index:
            parts.append(f"[{c.hit_index + 1}]")
    text = ""
    for p in parts:
        if text and not p.startswith("[") and text[-1].isascii() and p[0].isascii():
            text += " "
        text += p
    return text, highlights
