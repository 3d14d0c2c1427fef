"""The knowledge-gap report: what people asked that the articles do not answer well.

Built from the question log (:mod:`qa.questionlog`) for ``qa gaps`` and ``GET /admin/gaps``:

* **topics**: the logged questions grouped by meaning. Distinct question texts are clustered
  by their embeddings (stored with each question, so nothing is re-embedded) with average-linkage
  agglomerative clustering (SciPy) cut at a cosine distance (``DISTANCE``); above ``LINKAGE_MAX``
  distinct texts, a greedy leader pass first merges near-duplicates so the linkage stays small.
  Each group is named by its most distinctive terms (bigrams and identifiers from
  :func:`qa.lexical.tokens`, weighted by how few groups share them), and shows its
  count, example questions, status mix and the nearest indexed section, found by searching the
  index with the group's centroid and its most central question: "nothing near", "only a stub"
  at a file:line, a "weak match", or "covered" (then the articles answer it and the group is
  only listed when people voted its answers down);
* **down-voted answers**, with the passages they cited and the voters' comments;
* **stub sections** ranked by how often answers hit them (status ``stub``, or a cited passage
  that is a stub in the current index);
* **the not-covered rate over time** (per day, per week over long ranges).

Groups are ordered by how many of their questions went unanswered (not covered, stub, 👎).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter, defaultdict
from typing import Callable

import numpy as np
from pydantic import BaseModel, Field

from qa.questionlog import DAY, QuestionLog, vector_from

# cosine distance at which the dendrogram is cut: questions closer than this (on average) are
# one topic. Chosen on bench/gaps.py's synthetic log (see bench/README.md "gaps").
DISTANCE = 0.12
LINKAGE_MAX = 3000  # distinct texts clustered directly; more go through a leader pass first
LEADER_DISTANCE = 0.06
NEAREST_FOR = 60  # groups whose nearest section is looked up (the top ones by gap count)
GAP_STATUSES = ("not_covered", "stub")


class Nearest(BaseModel):
    path: str
    line_start: int
    line_end: int
    title: str
    heading: str
    is_stub: bool
    confidence: float


class Group(BaseModel):
    id: int
    name: str = Field(description="the group's most distinctive terms")
    terms: list[str]
    count: int = Field(description="questions asked (repeats included)")
    distinct: int = Field(description="distinct question texts")
    statuses: dict[str, int]
    gaps: int = Field(description="questions not covered, answered from a stub section, or voted down")
    down_votes: int = 0
    up_votes: int = 0
    examples: list[str] = Field(description="the most asked texts, most central first")
    channels: dict[str, int]
    first_seen: float
    last_seen: float
    verdict: str = Field(description="nothing near | only a stub | weak match | covered | no index")
    nearest: Nearest | None = None
    stub_at: str | None = Field(None, description="file:line of the stub these questions were answered from")


class DownVoted(BaseModel):
    answer_id: str
    question: str
    ts: float
    status: str
    confidence: float
    down: int
    up: int
    comments: list[str]
    sources: list[dict]


class StubHit(BaseModel):
    where: str
    path: str
    line: int
    title: str
    heading: str
    hits: int
    examples: list[str]


class MissingName(BaseModel):
    name: str = Field(description="a product or tool name (Latin script) that no article mentions")
    count: int = Field(description="not-covered questions that asked about it (repeats included)")
    examples: list[str]


class Day(BaseModel):
    start: float
    total: int
    not_covered: int
    stub: int
    rate: float = Field(description="share of the questions that were not covered")


class GapReport(BaseModel):
    generated_at: float
    since: float
    until: float
    questions: int
    statuses: dict[str, int]
    votes: dict[str, int]
    groups_total: int
    groups: list[Group]
    down_voted: list[DownVoted]
    stubs: list[StubHit]
    unmentioned: list[MissingName] = Field(
        default_factory=list, description="names asked about in not-covered questions that no article mentions, most asked first"
    )
    timeline: list[Day]
    bucket: str = Field(description="day or week")
    index_generation: str | None = None
    took_ms: float = 0.0


# --------------------------------------------------------------------------- parsing


_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw]?)\s*$")


def parse_since(text: str | int | float) -> float:
    """'30d', '12h', '2w' or a number of days → seconds."""
    if isinstance(text, (int, float)):
        return float(text) * DAY
    m = _SINCE.match(str(text).lower())
    if not m:
        raise ValueError(f"--since takes a duration like 30d, 12h or 2w, not {text!r}")
    n, unit = float(m.group(1)), m.group(2) or "d"
    return n * {"h": 3600.0, "d": DAY, "w": 7 * DAY}[unit]


# --------------------------------------------------------------------------- clustering


def _normalise(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def _leaders(x: np.ndarray, order: np.ndarray, distance: float) -> np.ndarray:
    """Greedy pass: each point joins the first leader within ``distance``, else leads."""
    assign = np.empty(len(x), dtype=np.int64)
    leaders: list[int] = []
    mat = np.empty((0, x.shape[1]), dtype=np.float32)
    for i in order:
        if len(leaders):
            sims = mat @ x[i]
            j = int(np.argmax(sims))
            if 1.0 - sims[j] <= distance:
                assign[i] = j
                continue
        assign[i] = len(leaders)
        leaders.append(i)
        mat = np.vstack([mat, x[i : i + 1]])
    return assign


def cluster(vectors: np.ndarray, weights: np.ndarray | None = None, distance: float = DISTANCE) -> np.ndarray:
    """Cluster labels (0..k-1) of unit vectors: average linkage cut at cosine ``distance``."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(vectors)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    x = _normalise(np.asarray(vectors, dtype=np.float32))
    weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    micro = np.arange(n)
    points = x
    if n > LINKAGE_MAX:
        micro = _leaders(x, np.argsort(-weights, kind="stable"), LEADER_DISTANCE)
        k = int(micro.max()) + 1
        sums = np.zeros((k, x.shape[1]), dtype=np.float64)
        np.add.at(sums, micro, x * weights[:, None])
        points = _normalise(sums.astype(np.float32))
        if k > LINKAGE_MAX:  # still too many: a coarser leader pass over the leaders
            coarse = _leaders(points, np.arange(k), distance / 2)
            micro = coarse[micro]
            k2 = int(coarse.max()) + 1
            sums = np.zeros((k2, x.shape[1]))
            np.add.at(sums, micro, x * weights[:, None])
            points = _normalise(sums.astype(np.float32))
    if len(points) == 1:
        return np.zeros(n, dtype=np.int64)
    z = linkage(points.astype(np.float64), method="average", metric="cosine")
    top = fcluster(z, t=distance, criterion="distance") - 1
    return top[micro].astype(np.int64)


_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def _phrases(folded: str, strong: set[str]) -> list[str]:
    """Maximal runs of ``strong`` bigrams in a question ("消息"+"息积"+"积压" → "消息积压"),
    and its strong Latin tokens, in order of appearance."""
    out = []
    for m in _CJK_RUN.finditer(folded):
        run = m.group()
        i = 0
        while i < len(run) - 1:
            if run[i : i + 2] in strong:
                j = i + 1
                while j < len(run) - 1 and run[j : j + 2] in strong:
                    j += 1
                out.append(run[i : j + 1])
                i = j + 1
            else:
                i += 1
    from qa.lexical import TOKEN_RE

    out.extend(t.group() for t in TOKEN_RE.finditer(folded) if not _CJK_RUN.match(t.group()) and t.group() in strong)
    return out


def name_groups(texts_by_group: list[list[tuple[str, int]]], n_terms: int = 3) -> list[list[str]]:
    """Each group's most distinctive terms: a class-based TF-IDF over :func:`qa.lexical.tokens`
    (CJK bigrams, whole identifiers), so words every topic shares ("配置", "怎么") sink; adjacent
    distinctive bigrams are joined back into the phrase the askers wrote."""
    from qa.lexical import fold, is_question_word, tokens

    tf: list[Counter] = []
    df: Counter = Counter()
    for texts in texts_by_group:
        c: Counter = Counter()
        for text, count in texts:
            for tok in set(tokens(text)):
                if len(tok) > 1 and not is_question_word(tok):
                    c[tok] += count
        tf.append(c)
        df.update(c.keys())
    g = max(1, len(texts_by_group))
    names = []
    for texts, c in zip(texts_by_group, tf):
        total = sum(count for _, count in texts) or 1
        score = {t: (n / total) * math.log(1 + g / df[t]) for t, n in c.items()}
        if not score:
            names.append([])
            continue
        best = max(score.values())
        strong = {t for t, v in sorted(score.items(), key=lambda kv: -kv[1])[:12] if v >= 0.3 * best}
        phrases: Counter = Counter()
        for text, count in sorted(texts, key=lambda tc: -tc[1])[:30]:
            for p in set(_phrases(fold(text), strong)):
                phrases[p] += count
        ranked = sorted(phrases, key=lambda p: (-phrases[p] * max(score.get(p[i : i + 2], score.get(p, 0)) for i in range(max(1, len(p) - 1))), p))
        picked: list[str] = []
        for p in ranked:
            if not any(p in q or q in p for q in picked):
                picked.append(p)
            if len(picked) == n_terms:
                break
        names.append(picked)
    return names


# --------------------------------------------------------------------------- the report


def _where(src: dict) -> str:
    lines = src.get("lines") or [0, 0]
    return f"{src.get('path', '?')}:{lines[0]}"


def _lead(sources: list[dict]) -> dict:
    """The passage an answer rests on: the first one its text cites, else the first listed."""
    return next((s for s in sources if s.get("cited")), sources[0])


def _stub_lookup(reader, sources: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """Which of these (path, first line) passages are stubs in the served index."""
    if reader is None or not sources:
        return set()
    out = set()
    conn = reader.conn
    for path, line in sources:
        row = conn.execute(
            "SELECT c.is_stub FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.source = ? AND c.line_start = ? LIMIT 1",
            (path, line),
        ).fetchone()
        if row and row[0]:
            out.add((path, line))
    return out


def _missing_names(reader, texts: dict[str, dict]) -> list[MissingName]:
    """Names in not-covered questions that the served index does not mention at all: the
    plainest kind of gap ("people ask about Velero; nothing here mentions it")."""
    if reader is None:
        return []
    from qa.mentions import MentionIndex
    from qa.vectors.faiss import as_index

    index = MentionIndex(as_index(reader))
    counts: Counter = Counter()
    shown: dict[str, str] = {}
    examples: dict[str, Counter] = defaultdict(Counter)
    for question, t in texts.items():
        n = t["statuses"].get("not_covered", 0)
        if not n:
            continue
        for name in index.missing(question):
            key = name.lower()
            counts[key] += n
            shown.setdefault(key, name)
            examples[key][question] += n
    return [MissingName(name=shown[k], count=c, examples=[q for q, _ in examples[k].most_common(3)])
            for k, c in sorted(counts.items(), key=lambda kc: (-kc[1], kc[0]))]


def _nearest(reader, settings, centroid: np.ndarray, text: str) -> Nearest | None:
    from qa.answer import confidence
    from qa.retrieval import make_query, search

    kw = {}
    if settings is not None:
        kw = dict(candidates=settings.candidates, rrf_k=settings.rrf_k, fusion=settings.fusion, dense_weight=settings.dense_weight)
    hits = search(reader, centroid.astype(np.float32), make_query(text), k=1, method="hybrid", **kw)
    if not hits:
        return None
    h = hits[0]
    c = h.chunk
    return Nearest(
        path=c.source, line_start=c.line_start, line_end=c.line_end, title=c.title, heading=c.heading,
        is_stub=c.is_stub, confidence=round(confidence(h), 4),
    )


def _verdict(nearest: Nearest | None, reader, min_confidence: float) -> str:
    if reader is None:
        return "no index"
    if nearest is None or nearest.confidence < min_confidence / 2:
        return "nothing near"
    if nearest.is_stub:
        return "only a stub"
    if nearest.confidence < min_confidence:
        return "weak match"
    return "covered"


def build_report(
    qlog: QuestionLog,
    since_s: float = 30 * DAY,
    reader=None,
    settings=None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    top: int = 30,
    now: float | None = None,
    distance: float = DISTANCE,
) -> GapReport:
    """The report over the questions of the last ``since_s`` seconds.

    ``reader`` (an :class:`qa.store.IndexReader`) finds each group's nearest section and which
    cited passages are stubs; without it those parts say "no index". ``embed`` embeds questions
    logged without a vector (asked with ``method=lexical``); without it they are left out of the
    topics (still counted everywhere else).
    """
    t0 = time.perf_counter()
    now = time.time() if now is None else now
    since = now - since_s
    rows = qlog.questions(since)
    votes = qlog.votes(0.0)
    min_conf = settings.min_confidence if settings is not None else 0.5

    # votes: per answer, the latest vote of each voter
    by_answer: dict[str, dict] = defaultdict(lambda: {"up": 0, "down": 0, "comments": []})
    for answer_id, _voter, vote, comment, _ts in votes:
        v = by_answer[answer_id]
        v[vote] += 1
        if comment:
            v["comments"].append(comment)

    statuses: Counter = Counter()
    texts: dict[str, dict] = {}  # distinct question text -> its stats
    stub_hits: dict[tuple[str, int], dict] = {}
    cited_first: set[tuple[str, int]] = set()
    down_voted: list[DownVoted] = []
    days: dict[int, Counter] = defaultdict(Counter)
    span = now - (rows[0][1] if rows else now)
    bucket_s = 7 * DAY if span > 90 * DAY else DAY
    parsed = []
    for answer_id, ts, channel, question, status, conf, sources_json, _gen, blob in rows:
        statuses[status] += 1
        sources = json.loads(sources_json or "[]")
        parsed.append((answer_id, ts, channel, question, status, conf, sources))
        b = days[int(ts // bucket_s)]
        b["total"] += 1
        b[status] += 1
        t = texts.get(question)
        if t is None:
            t = texts[question] = {"count": 0, "vec": None, "statuses": Counter(), "channels": Counter(),
                                   "first": ts, "last": ts, "down": 0, "up": 0, "stub_at": Counter()}
        t["count"] += 1
        t["statuses"][status] += 1
        t["channels"][channel] += 1
        t["last"] = ts
        if t["vec"] is None and blob:
            t["vec"] = vector_from(blob)
        v = by_answer.get(answer_id)
        if v is not None:
            t["down"] += v["down"]
            t["up"] += v["up"]
        if sources:
            lead = _lead(sources)
            cited_first.add((lead.get("path", "?"), (lead.get("lines") or [0])[0]))
        if v is not None and v["down"] > 0:
            down_voted.append(DownVoted(
                answer_id=answer_id, question=question, ts=ts, status=status, confidence=conf,
                down=v["down"], up=v["up"], comments=v["comments"][:5], sources=sources,
            ))

    # stub sections: answers marked stub, or whose first cited passage is a stub in the index
    stubs_in_index = _stub_lookup(reader, cited_first)
    for answer_id, ts, channel, question, status, conf, sources in parsed:
        if not sources:
            continue
        s0 = _lead(sources)
        key = (s0.get("path", "?"), (s0.get("lines") or [0])[0])
        if status == "stub" or key in stubs_in_index:
            texts[question]["stub_at"][_where(s0)] += 1  # answered from a stub: a gap too
            e = stub_hits.setdefault(key, {"title": s0.get("title", ""), "heading": s0.get("heading", ""), "hits": 0, "ex": Counter()})
            e["hits"] += 1
            e["ex"][question] += 1

    # topics
    distinct = list(texts)
    missing = [q for q in distinct if texts[q]["vec"] is None]
    if missing and embed is not None:
        for q, vec in zip(missing, embed(missing)):
            texts[q]["vec"] = np.asarray(vec, dtype=np.float32)
    with_vec = [q for q in distinct if texts[q]["vec"] is not None]
    groups: list[Group] = []
    if with_vec:
        mat = _normalise(np.stack([texts[q]["vec"] for q in with_vec]).astype(np.float32))
        weights = np.array([texts[q]["count"] for q in with_vec], dtype=np.float64)
        labels = cluster(mat, weights, distance)
        members: dict[int, list[int]] = defaultdict(list)
        for i, lab in enumerate(labels):
            members[int(lab)].append(i)
        summaries = []
        for lab, idx in members.items():
            st: Counter = Counter()
            ch: Counter = Counter()
            stub_at: Counter = Counter()
            down = up = 0
            for i in idx:
                t = texts[with_vec[i]]
                st.update(t["statuses"])
                ch.update(t["channels"])
                stub_at.update(t["stub_at"])
                down += t["down"]
                up += t["up"]
            count = int(weights[idx].sum())
            # not covered, or answered from a stub section (status stub, or a stub cited first), or 👎
            gaps = st["not_covered"] + max(st["stub"], sum(stub_at.values())) + down
            summaries.append((gaps, count, lab, idx, st, ch, stub_at, down, up))
        summaries.sort(key=lambda s: (-s[0], -s[1], s[2]))
        kept = [s for s in summaries if s[0] > 0][:top] or summaries[:top]
        names = name_groups([[(with_vec[i], texts[with_vec[i]]["count"]) for i in s[3]] for s in summaries])
        name_of = {s[2]: names[k] for k, s in enumerate(summaries)}
        for rank, (gaps, count, lab, idx, st, ch, stub_at, down, up) in enumerate(kept):
            sub = mat[idx]
            centroid = _normalise(sub.mean(axis=0, keepdims=True))[0]
            central = sorted(idx, key=lambda i: (-float(mat[i] @ centroid), -texts[with_vec[i]]["count"]))
            by_count = sorted(idx, key=lambda i: -texts[with_vec[i]]["count"])
            examples = list(dict.fromkeys([with_vec[central[0]]] + [with_vec[i] for i in by_count]))[:5]
            nearest = _nearest(reader, settings, centroid, with_vec[central[0]]) if reader is not None and rank < NEAREST_FOR else None
            terms = name_of[lab]
            groups.append(Group(
                id=rank + 1, name=" · ".join(terms) or examples[0][:24], terms=terms, count=count, distinct=len(idx),
                statuses=dict(st), gaps=gaps, down_votes=down, up_votes=up, examples=examples, channels=dict(ch),
                first_seen=min(texts[with_vec[i]]["first"] for i in idx), last_seen=max(texts[with_vec[i]]["last"] for i in idx),
                verdict=_verdict(nearest, reader, min_conf) if rank < NEAREST_FOR or reader is None else "not looked up",
                nearest=nearest, stub_at=stub_at.most_common(1)[0][0] if stub_at else None,
            ))
        groups_total = len(summaries)
    else:
        groups_total = 0

    unmentioned = _missing_names(reader, texts)
    stubs = sorted(
        (StubHit(where=f"{p}:{line}", path=p, line=line, title=e["title"], heading=e["heading"], hits=e["hits"],
                 examples=[q for q, _ in e["ex"].most_common(3)]) for (p, line), e in stub_hits.items()),
        key=lambda s: (-s.hits, s.where),
    )
    down_voted.sort(key=lambda d: (-d.down, -d.ts))
    timeline = [
        Day(start=k * bucket_s, total=c["total"], not_covered=c["not_covered"], stub=c["stub"],
            rate=round(c["not_covered"] / c["total"], 4) if c["total"] else 0.0)
        for k, c in sorted(days.items())
    ]
    up = sum(v["up"] for v in by_answer.values())
    down = sum(v["down"] for v in by_answer.values())
    return GapReport(
        generated_at=now, since=since, until=now, questions=len(rows), statuses=dict(statuses),
        votes={"up": up, "down": down}, groups_total=groups_total, groups=groups, down_voted=down_voted[:50],
        stubs=stubs[:30], unmentioned=unmentioned[:30], timeline=timeline, bucket="week" if bucket_s > DAY else "day",
        index_generation=getattr(reader, "generation", None), took_ms=round((time.perf_counter() - t0) * 1000, 1),
    )


def describe(g: Group) -> str:
    """One line a writer reads: "asked 14 times, we only have a stub at docs/x.md:40"."""
    asked = f"asked {g.count} time{'s' if g.count != 1 else ''}"
    if g.stub_at or g.verdict == "only a stub":
        where = g.stub_at or (f"{g.nearest.path}:{g.nearest.line_start}" if g.nearest else "?")
        return f"{asked}, we only have a stub at {where}"
    if g.verdict == "nothing near":
        return f"{asked}, nothing near in the articles"
    if g.nearest is not None and g.verdict in ("weak match", "covered"):
        return f"{asked}, nearest: {g.nearest.path}:{g.nearest.line_start} ({g.verdict}, {g.nearest.confidence:.2f})"
    return f"{asked} ({g.verdict})"


__all__ = ["build_report", "GapReport", "Group", "cluster", "name_groups", "parse_since", "describe", "DISTANCE"]
