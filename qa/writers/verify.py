"""After generation: is each sentence of a written answer stated by the passage it cites?

For every sentence (``qa.chunks.split_sentences``; markers that follow the full stop belong
to the sentence before it) the cited passages are searched for the window (one sentence or
two adjacent ones) that best supports it, and the sentence is scored with

* lexical coverage: the share of the sentence's tokens (``qa.lexical.tokens``: bigrams and
  whole identifiers) found in the window, and in the whole passage;
* the longest run of consecutive sentence tokens absent from the passage (a substituted
  name or fact shows up as a run, a reworded connective does not);
* dense similarity: cosine of the sentence and the window with the embedding model;

combined by a logistic model whose weights were fitted on ``bench/data/support-pairs.jsonl``
(``bench/verify.py``). Hard checks come first: every Arabic number of the sentence must occur
in the passage next to the same neighbouring character, every Latin identifier in the passage,
and a negation (不/没/未/无/非) the sentence adds or drops against its best windows fails it.
A sentence without a (valid) marker is unsupported.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from qa import lexical
from qa.chunks import split_sentences
from qa.responses import SentenceCheck
from qa.writers.base import EncodeFn

# [1] [1][2] [1,2] [1、2] 【1】 and the same with full-width brackets/digits (NFKC'd before matching)
MARKER_RE = re.compile(r"[\[【]\s*(\d{1,3}(?:\s*[,，、;；]\s*\d{1,3})*)\s*[\]】]")
LEADING_MARKERS_RE = re.compile(r"^(?:\s*[\[【]\s*\d{1,3}(?:\s*[,，、;；]\s*\d{1,3})*\s*[\]】])+")
NUMBER_RE = re.compile(r"\d+(?:\.\d+)*")
NEGATIONS = "不没未无非"
NOT_NEGATIONS = ("不过", "不仅", "无论", "非常", "不断", "无需", "不少")  # connectives and degree words
CONTENT_RE = re.compile(rf"[\w{lexical.CJK}]")

# Logistic model over the features, fitted by `bench/verify.py --fit` on the "fit" half of
# bench/data/support-pairs.jsonl (pairs the hard checks already decide left out); the flag-rate
# curve on the "test" half is in bench/results/verify.json (0.95 of unsupported flagged, 0.06 of
# supported, at 0.5). Dense similarity of e5 lives in a narrow band (0.85-1.0), hence its large
# weight; the two coverages are collinear, so their signs say little on their own.
W_BIAS = -26.626
W_COV_WINDOW = -1.38
W_COV_PASSAGE = 2.052
W_DENSE = 30.575
W_RUN = -0.538
THRESHOLD = 0.5  # probability of support below which a sentence is flagged


@dataclass
class Features:
    cov_window: float
    cov_passage: float
    dense: float
    run: int  # longest run of sentence tokens missing from the passage
    numbers_ok: bool  # every number and identifier of the sentence is in the passage
    negation_ok: bool
    span: tuple[int, int]  # best window in the passage


def probability(f: Features) -> float:
    """Calibrated probability that the passage states the sentence (hard checks aside)."""
    z = W_BIAS + W_COV_WINDOW * f.cov_window + W_COV_PASSAGE * f.cov_passage + W_DENSE * f.dense + W_RUN * f.run
    return 1 / (1 + math.exp(-z))


def decide(f: Features, threshold: float = THRESHOLD) -> tuple[bool, float, str | None]:
    p = probability(f)
    if not f.numbers_ok:
        return False, p, "number_or_name"
    if not f.negation_ok:
        return False, p, "negation"
    if p < threshold:
        return False, p, "not_in_passage"
    return True, p, None


# --------------------------------------------------------------------------- features


def _windows(text: str) -> list[tuple[int, int]]:
    spans = split_sentences(text)
    out = list(spans)
    out += [(spans[i][0], spans[i + 1][1]) for i in range(len(spans) - 1)]
    return out or [(0, len(text))]


def _longest_missing_run(toks: list[str], present: set[str]) -> int:
    best = run = 0
    for t in toks:
        run = run + 1 if t not in present else 0
        best = max(best, run)
    return best


class _VecCache:
    """Window vectors by text: the same popular passages are verified again and again."""

    def __init__(self, size: int = 4096):
        self.size = size
        self._d: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, encode: EncodeFn, texts: list[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._d]
        if missing:
            vecs = encode(missing)
            with self._lock:
                for t, v in zip(missing, vecs):
                    self._d[t] = v
                    if len(self._d) > self.size:
                        self._d.popitem(last=False)
        with self._lock:
            return np.stack([self._d[t] if t in self._d else encode([t])[0] for t in texts])


_CACHE = _VecCache()
DENSE_WINDOWS = 3  # windows per passage (best by coverage) that are embedded


def features(sentence: str, passage: str, encode: EncodeFn, sentence_vec: np.ndarray | None = None) -> Features:
    """How well ``passage`` supports ``sentence`` (markers already removed)."""
    fs = lexical.fold(sentence)
    fp = lexical.fold(passage)
    toks = lexical.tokens(fs, folded=True)
    ptoks = set(lexical.tokens(fp, folded=True))
    n = max(1, len(toks))
    cov_passage = sum(t in ptoks for t in toks) / n
    scored = []
    for a, b in _windows(passage):
        wt = set(lexical.tokens(lexical.fold(passage[a:b]), folded=True))
        scored.append((sum(t in wt for t in toks) / n, (a, b)))
    scored.sort(key=lambda x: -x[0])
    top = scored[:DENSE_WINDOWS]
    if sentence_vec is None:
        sentence_vec = encode([sentence])[0]
    wvecs = _CACHE.encode(encode, [passage[a:b] for _, (a, b) in top])
    sims = wvecs @ sentence_vec
    j = int(np.argmax(sims))
    best_cov = top[0][0]
    span = top[j][1] if sims[j] - float(sims[0]) > 0.02 else top[0][1]
    window = lexical.fold(passage[span[0]:span[1]])
    # an answer sentence may join clauses of two sentences: an added negation is looked for in
    # the two best windows by coverage as well as in the best one
    support = lexical.fold(" ".join(passage[a:b] for a, b in [span, *(sp for _, sp in top[:2])]))
    return Features(
        cov_window=best_cov,
        cov_passage=cov_passage,
        dense=float(sims.max()),
        run=_longest_missing_run(toks, ptoks),
        numbers_ok=identifiers_ok(fs, fp),
        negation_ok=negation_ok(fs, window, support),
        span=span,
    )


def negation_ok(fs: str, window: str, support: str | None = None) -> bool:
    """No negation added or dropped (all folded): every negated bigram of the sentence (不是,
    没有...) is in the supporting text (the best windows), and no negated bigram of the best
    window is stated positively by the sentence."""
    support = support or window
    for i, c in enumerate(fs):
        if c in NEGATIONS and fs[i : i + 2] not in support and fs[i : i + 2] not in NOT_NEGATIONS:
            return False
    for i, c in enumerate(window):
        if c in NEGATIONS and window[i : i + 2] not in NOT_NEGATIONS:
            positive = window[i + 1 : i + 3]
            if len(positive) == 2 and _content(positive) and positive in fs and (c + positive) not in fs:
                return False
    return True


def numbers_in_context(fs: str, fp: str) -> bool:
    """Every number of the sentence occurs in the passage next to the same neighbour: "9天" needs
    "9天" (not a 9 somewhere and an 8天), "上午9:30" is fine when the passage has "午9:30"
    in any sentence. Whitespace is ignored ("30 分钟" = "30分钟")."""
    s = re.sub(r"\s+", "", fs)
    p = re.sub(r"\s+", "", fp)
    for m in NUMBER_RE.finditer(s):
        num = re.escape(m.group())
        left = re.escape(s[m.start() - 1]) if m.start() > 0 else ""
        right = re.escape(s[m.end()]) if m.end() < len(s) else ""
        pats = [f"{left}{num}(?![\\d.])"] if left else []
        if right:
            pats.append(f"(?<![\\d.]){num}{right}")
        pats = pats or [f"(?<![\\d.]){num}(?![\\d.])"]
        if not any(re.search(pat, p) for pat in pats):
            return False
    return True


IDENT_RE = re.compile(r"[a-z][a-z0-9_]*(?:[.\-+#/][a-z0-9_]+)*")


def identifiers_ok(fs: str, fp: str) -> bool:
    """Names, commands, versions and numbers are facts: each must occur in the passage as written
    (numbers with their neighbour, see :func:`numbers_in_context`; k8s/kubernetes count as one)."""
    if not numbers_in_context(fs, fp):
        return False
    pid = set(IDENT_RE.findall(fp))
    for t in IDENT_RE.findall(fs):
        if t not in pid and not (t in lexical.ALIASES and lexical.ALIASES[t] in pid) and t not in fp:
            return False
    return True


def _content(s: str) -> bool:
    return all("\u3400" <= ch <= "\u9fff" for ch in s)


# --------------------------------------------------------------------------- answers


@dataclass
class Verified:
    text: str
    sentences: list[SentenceCheck]
    highlights: dict[int, list[list[int]]]
    share: float  # supported / sentences with content
    total: int = 0  # sentences with content, dropped ones included
    removed_markers: int = 0


def _parse_numbers(group: str) -> list[int]:
    return [int(x) for x in re.split(r"[^\d]+", group) if x]


def split_answer(text: str) -> list[tuple[str, list[int]]]:
    """(sentence without markers, cited numbers) pairs; a marker after the full stop counts for
    the sentence before it."""
    pieces: list[list] = []  # [raw text, numbers]
    for a, b in split_sentences(text):
        raw = text[a:b]
        lead = LEADING_MARKERS_RE.match(raw)
        if lead and pieces:
            pieces[-1][0] += lead.group(0).strip()
            raw = raw[lead.end():].strip()
        if raw:
            pieces.append([raw, []])
    out = []
    for raw, _ in pieces:
        nums: list[int] = []
        for m in MARKER_RE.finditer(raw):
            for n in _parse_numbers(m.group(1)):
                if n not in nums:
                    nums.append(n)
        out.append((raw, nums))
    return out


def strip_markers(text: str) -> str:
    return MARKER_RE.sub("", text).strip()


def _shown(plain: str, cited: list[int]) -> str:
    """A sentence as shown: its text, the markers moved before a final full stop."""
    m = re.search(r"[。！？!?.；;]+$", plain)
    tail = m.group(0) if m else ""
    body = plain[: len(plain) - len(tail)] if tail else plain
    return body + "".join(f"[{n}]" for n in cited) + tail


def verify(
    text: str,
    passages: dict[int, str],
    encode: EncodeFn,
    *,
    drop_unsupported: bool = False,
    threshold: float = THRESHOLD,
) -> Verified:
    """Check every sentence of ``text`` against the passages it cites.

    ``passages`` maps citation number -> passage text for the passages the writer was given;
    markers to any other number are removed. Returns the text to show (unsupported sentences
    kept and flagged, or dropped), the per-sentence checks and the supported share."""
    text = re.sub(r"[［【]", "[", re.sub(r"[］】]", "]", text))
    parts = split_answer(text)
    checks: list[SentenceCheck] = []
    highlights: dict[int, list[list[int]]] = {}
    removed = 0
    content = [(raw, nums) for raw, nums in parts if CONTENT_RE.search(strip_markers(raw))]
    plains = [strip_markers(raw) for raw, _ in content]
    vecs = encode(plains) if plains else None
    shown_parts: list[str] = []
    for k, ((raw, nums), plain) in enumerate(zip(content, plains)):
        valid = [n for n in nums if n in passages]
        removed += len(nums) - len(valid)
        shown = _shown(plain, valid)
        if not valid:
            checks.append(SentenceCheck(text=shown, cited=[], supported=False, reason="no_citation"))
        else:
            best = None
            for n in valid:
                f = features(plain, passages[n], encode, vecs[k])
                ok, p, reason = decide(f, threshold)
                cand = (ok, p, reason, n, f)
                if best is None or (ok, p) > (best[0], best[1]):
                    best = cand
            ok, p, reason, n, f = best
            checks.append(SentenceCheck(
                text=shown, cited=valid, supported=ok, span=[n, f.span[0], f.span[1]] if ok else None,
                score=round(p, 4), reason=reason,
            ))
            if ok:
                highlights.setdefault(n - 1, []).append([f.span[0], f.span[1]])
        if checks[-1].supported or not drop_unsupported:
            shown_parts.append(shown)
    shown_text = ""
    for p in shown_parts:
        if shown_text and shown_text[-1].isascii() and p[0].isascii():
            shown_text += " "
        shown_text += p
    n_ok = sum(c.supported for c in checks)
    total = len(checks)
    share = n_ok / total if total else 0.0
    if drop_unsupported:
        checks = [c for c in checks if c.supported]
    return Verified(shown_text, checks, highlights, share, total, removed)
