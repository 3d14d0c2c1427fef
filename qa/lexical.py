"""Lexical units for Chinese technical text: what BM25 matches on.

Chinese has no spaces, so passages and questions are cut into overlapping
character bigrams (as Lucene's CJK analyzer does: on CMRC dev they beat jieba
words for retrieval).  Latin words, identifiers, version numbers and commands
(``kubectl``, ``1.28``, ``apt-get``) are kept whole, and also split into their
parts so ``kube-proxy`` matches ``proxy``.  Text is folded first: full-width to
half-width (NFKC), lower case, Traditional to Simplified with Taiwan phrasing (OpenCC ``tw2sp``: 軟體→软件, 快取→缓存), so a DRCD
question in Traditional characters meets a Simplified passage and vice versa.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

# Bump when tokens() changes: indexes built with another version are re-tokenised.
VERSION = "bigram-v2"
CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
TOKEN_RE = re.compile(rf"[{CJK}]+|[a-z0-9_]+(?:[.\-+#/:][a-z0-9_]+)*[+#]*")
PART_RE = re.compile(r"[a-z0-9]+")
# Characters our tokens may contain besides letters and digits; the FTS5
# tokenizer is told to keep them inside tokens.
TOKEN_CHARS = "_.-+#/:"

# Bigrams that make a sentence a question ("什么", "怎么", "是什"...): they carry no
# content and answers rarely repeat them, so sentence scoring and coverage ignore them.
QUESTION_WORDS = frozenset(
    "什么 是什 么是 么样 怎么 怎样 如何 哪些 哪个 哪里 为什 为何 多少 多久 几个 是否 请问 一下 吗 呢 么 "
    "是 的 了 和 与 有 在 吧 啊 可以 能否 能不 不能 什么样 多大 多长 几种 哪种 请问 告诉 一下".split()
)

# Well-known abbreviations in Chinese tech writing; a token also emits its alias so
# "k8s" meets "Kubernetes".  Kept tiny and domain-generic on purpose.
ALIASES = {"k8s": "kubernetes", "kubernetes": "k8s"}

# A bigram holding one of these characters is question phrasing ("做什", "么的").
QUESTION_CHARS = frozenset("什么怎吗呢哪谁啥")


def is_question_word(tok: str) -> bool:
    return tok in QUESTION_WORDS or any(c in QUESTION_CHARS for c in tok)


_local = threading.local()


def _converter():
    conv = getattr(_local, "opencc", None)
    if conv is None:
        import opencc

        conv = _local.opencc = opencc.OpenCC("tw2sp")
    return conv


@lru_cache(maxsize=32768)
def fold(text: str) -> str:
    """Width, case and script folding used for matching (never for display).

    Cached: a server folds the same popular passages and their sentences for question
    after question (about 50 folds per question, 4 ms uncached)."""
    text = unicodedata.normalize("NFKC", text).lower()
    if re.search(f"[{CJK}]", text):
        text = _converter().convert(text)
    return text


def tokens(text: str, folded: bool = False) -> list[str]:
    """Bigrams for CJK runs (a lone character stays a unigram); whole and split
    Latin identifiers."""
    if not folded:
        text = fold(text)
    out: list[str] = []
    for m in TOKEN_RE.finditer(text):
        t = m.group()
        c = t[0]
        if "\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff":
            if len(t) == 1:
                out.append(t)
            else:
                out.extend(t[i : i + 2] for i in range(len(t) - 1))
        else:
            out.append(t)
            alias = ALIASES.get(t)
            if alias:
                out.append(alias)
            parts = PART_RE.findall(t)
            if len(parts) > 1:
                out.extend(parts)
    return out


@lru_cache(maxsize=4096)
def query_tokens(text: str) -> tuple[str, ...]:
    """Distinct tokens of a question, in first-seen order (cached: questions repeat)."""
    return tuple(dict.fromkeys(tokens(text)))


def fts_document(text: str) -> str:
    """The pre-tokenised form stored in SQLite FTS5 (space separated)."""
    return " ".join(tokens(text))


def fts_query(toks: tuple[str, ...] | list[str]) -> str:
    """An FTS5 OR-query over the tokens; each is quoted so FTS syntax in user
    input (AND, NEAR, quotes, *) is matched literally, never interpreted."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in toks)


def _jieba():
    import logging

    import jieba
    import jieba.analyse

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba, jieba.analyse.default_tfidf


_JIEBA = None
_JIEBA_LOCK = threading.Lock()
MIN_TERM_IDF = 4.0  # jieba's IDF for function words (的 0.9, 是 1.7, 和 1.8, 到 2.8) is below this


def warm() -> None:
    """Load jieba's dictionary now (about a second) instead of on the first question."""
    global _JIEBA
    with _JIEBA_LOCK:
        if _JIEBA is None:
            _JIEBA = _jieba()
    _converter()


@lru_cache(maxsize=4096)
def question_terms(text: str) -> tuple[tuple[str, float], ...]:
    """Content words of a question with IDF weights, for coverage and sentence scoring.

    Chinese runs are cut with jieba (search mode, so compounds also yield their
    parts); function words and question phrasing are dropped; Latin identifiers
    stay whole.  Weights come from jieba's general-domain IDF table, so they do
    not depend on how small the indexed corpus is.
    """
    if _JIEBA is None:
        warm()
    jieba, tfidf = _JIEBA
    idf, median = tfidf.idf_freq, tfidf.median_idf
    terms: dict[str, float] = {}
    for m in TOKEN_RE.finditer(fold(text)):
        t = m.group()
        if "\u3400" <= t[0] <= "\u9fff" or "\uf900" <= t[0] <= "\ufaff":
            for w in jieba.lcut_for_search(t):
                weight = idf.get(w, median)
                if weight >= MIN_TERM_IDF and not is_question_word(w):
                    terms[w] = weight
        else:
            terms[t] = median
            if t in ALIASES:
                terms.setdefault(ALIASES[t], 0.0)
    return tuple(terms.items())


def term_coverage(terms: tuple[tuple[str, float], ...], folded_text: str) -> float:
    """IDF-weighted share of the question's content words that occur in the text.

    An alias (k8s/kubernetes) counts for its term."""
    total = sum(w for _, w in terms)
    return matched_weight(terms, folded_text) / total if total else 0.0


def _found(terms: tuple[tuple[str, float], ...], folded_text: str) -> list[tuple[str, float]]:
    """The weighted question terms present in the text (an alias counts for its term)."""
    return [(t, w) for t, w in terms if w and (t in folded_text or (t in ALIASES and ALIASES[t] in folded_text))]


def matched_weight(terms: tuple[tuple[str, float], ...], folded_text: str) -> float:
    """Sum of the weights of question terms present in the text (aliases count)."""
    return sum(w for _, w in _found(terms, folded_text))


def distinct_matched_weight(terms: tuple[tuple[str, float], ...], folded_text: str) -> float:
    """Like :func:`matched_weight`, but a word found inside a longer question word that is found
    too counts once, as the longer word: jieba's search mode yields "历史记录" with its parts
    "历史", "记录" (and "史记"), and one "历史记录" in a sentence must not outweigh "记录" plus a
    word the question really asks about."""
    found = _found(terms, folded_text)
    return sum(w for t, w in found if not any(t != u and t in u for u, _ in found))
