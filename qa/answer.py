"""Ranked passages -> a short answer whose first sentence answers, or an honest
"not covered" / "not written yet".

The answer is extractive: nothing is paraphrased, so every claim can be checked against
its citation.  Candidates are the structural units of the best passages (sentences, whole
list items, table rows with their header, short code blocks; see :mod:`qa.units`), scored
by the question's rare words (IDF over the candidate pool), by whether they have the shape
of an answer to this kind of question (:mod:`qa.questions`), and demoted when they are
prefaces, references or figure notes.  The best unit goes first, with what it introduces
when it ends in "："; supporting units follow in reading order, each run followed by the
marker of the passage it came from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from qa import lexical
from qa.cues import answers_own_question, is_meta_sentence, refers_back
from qa.questions import (
    answer_cue,
    as_asked,
    mention_forms,
    named_terms,
    is_reference_section,
    is_rhetorical,
    is_stub_text,
    is_symptom_section,
    question_type,
    HOW_CODE,
)
from qa.retrieval import Hit, Query, coverage
from qa.units import LEAD_IN_RE, Unit, closed, display, only_markup, split_units

NOT_COVERED = "文章中没有找到这个问题的答案（The articles do not cover this question）。"
NOT_MENTIONED = "文章中没有提到 {names}，找不到这个问题的答案（The articles do not mention {names}）。"
SEE_SOURCE = "答案在引用的{what}中，请看出处（The answer is in the cited {what_en}）。"
STUB_ANSWER = "文章中有这一节，但还没有写完（The article has this section, but it is not written yet）：{section}。"
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


# Knobs measured on bench/data/real-questions.jsonl and CMRC 2018 dev (bench/answers.py).
# A passage's units count by its fused score relative to the best passage's, to this power:
# two passages of one section that retrieval scores alike are read alike.
RANK_POWER = 3.0
MIN_RATIO = 0.2  # units of the lead's passage scoring below this share of the best are not added
OTHER_RATIO = 0.35  # the same for units of other passages: padding from weaker passages costs more
META_FACTOR = 0.1  # prefaces, references and figure notes only answer when nothing else does
BACK_REFERENCE_RE = re.compile(r"^(?:上述|上面|以上|前面|前述)")
BACK_FACTOR = 0.5  # a passage that opens with "上述……" refers to what came before it: a poor first sentence
QUESTION_FACTOR = 0.3  # "怎么用呢？": an article's own questions lead on, they do not answer
# "因此，v2 不再支持该功能。": to a why question a conclusion is the effect; its reason is the sentence before
CONCLUSION_RE = re.compile(r"^(?:因此|所以|因而|故而|于是)[，,]")
REASON_START_RE = re.compile(r"^(?:这是因为|这是由于|因为|由于|原因是|之所以)")
REASON_GAIN = 1.05
PROBLEM_RE = re.compile(r"报错|出错|失败|不生效|没有?生效|无效|无法|不能|不了|异常|错误|error", re.I)
REMEDY_RE = re.compile(r"请|可以使用|可使用|可以通过|可通过|需要|应该|应当|建议|解决|改为|替换")
THIS_REASON_RE = re.compile(r"^(?:这是因为|这是由于|原因是)")
CLOSED_FACTOR = 0.6  # a lead-in quoted without what it introduces says less than it meant to
SYMPTOM_FACTOR = 0.2  # a "现象" section restates the problem; its "解决方法" sibling answers
REMEDY_DECAY = 0.85  # each later unit of a remedy section read after its symptom counts a little less
OWN_SHARE = 0.5  # a remedy unit matching the question this well by its own words: the question names that step
REMEDY_SHARE = 0.5  # ... from half as well as the symptom matched: a step that names the question's words still wins
# How much an answer-shaped unit gains, by kind of question; factoid questions are matched by
# their rare words alone (CMRC: cue weights above 0 for "fact" did not help).
CUE_WEIGHT = {"yesno": 0.6, "definition": 0.6, "why": 0.5, "difference": 0.6, "how": 0.5, "relation": 0.6,
              "consequence": 0.5, "when": 0.5, "name": 0.5, "list": 0.3, "fact": 0.0}
# a question word that the sentence before (same paragraph) or the paragraph's opening sentence
# holds counts this much: Chinese sentences go on about the subject named before them without
# naming it again ("……有一个 `restartPolicy` 字段。默认为 Always。")
CONTEXT_SHARE = 0.2
HEADING_SHARE = 0.3  # a question word a unit lacks but its section's heading holds counts this much
CODE_FACTOR = {"how": 1.0}  # code units elsewhere count at half their score
STUB_MIN_COVERAGE = 0.35  # share of the question's words a stub's headings must hold
SUBJECT_STUB_COVERAGE = 0.25  # ... or this share, when they name the question's subject (Dockerfile)
CONDITION_RE = re.compile(r"(?:如果|假如|倘若|若|要是|如需|只要|一旦)")
MAIN_CLAUSE_RE = re.compile(r"(?:那么?|则|就|便|才|需要|可以|请|应该?|必须|将|会)")
CONSEQUENCE_RE = re.compile(r"(?:那么?|那就|则|就|便|才|所以|因此|因而|于是)")
SPLIT_FACTOR = 0.5  # a trimmed run that splits a condition from what it conditions says half as much
BARE_ITEM_CHARS = 8  # an item this short that no sentence introduces is a bare name (a list of links)
MIN_TRIMMED = 20  # a lead cut shorter than this says too little: its antecedent goes instead
CLAUSE_RE = re.compile(r"[，,；;、]")
END_PUNCT_RE = re.compile(r"[。！？；.!?;：:，,、]\s*$")


@dataclass
class Candidate:
    hit: int
    index: int  # position in its passage's unit list
    unit: Unit
    score: float = 0.0


def heading_coverage(query: Query, chunk) -> float:
    """How much of the question a passage's title and headings hold: what a stub is about."""
    return coverage(query, f"{chunk.title} {chunk.heading}")


def best_stub(query: Query, stubs: list) -> Hit | None:
    """Of a generation's stub sections (chunk rows), the one whose headings cover the question
    best, as a hit that :func:`stub_hit` can weigh against the cited passages; None when no
    stub's headings hold enough of the question."""
    if not stubs:
        return None
    cov = [heading_coverage(query, c) for c in stubs]
    best = max(range(len(stubs)), key=lambda i: (cov[i], -i))
    subject = _subject(query)
    if cov[best] < STUB_MIN_COVERAGE and not (
        cov[best] >= SUBJECT_STUB_COVERAGE and subject and _names(subject, f"{stubs[best].title} {stubs[best].heading}")
    ):
        return None
    return Hit(chunk=stubs[best], fused=0.0, coverage=coverage(query, stubs[best].text))


def stub_hit(query: Query, hits: list[Hit], usable: list[bool] | None = None, depth: int = 5) -> int | None:
    """The index of a stub section that is the best match for the question, if any.

    A stub (a heading over "待补充。。。") is *about* the question when its title and headings
    cover the question's words: it wins when no written passage covers them as well, either
    with its own text or with a heading that is about the question too.  Then the honest
    answer is "that section is not written yet", not sentences borrowed from elsewhere."""
    stubs, written, written_head = [], 0.0, 0.0
    for i, h in enumerate(hits[:depth]):
        if h.chunk.is_stub or is_stub_text(h.chunk.text):
            stubs.append(i)
        elif usable is None or usable[i]:
            written = max(written, h.coverage)
            written_head = max(written_head, heading_coverage(query, h.chunk))
    if not stubs:
        return None
    head = {i: heading_coverage(query, hits[i].chunk) for i in stubs}
    best = max(stubs, key=lambda i: (head[i], -i))
    cov = head[best]
    if cov < SUBJECT_STUB_COVERAGE:
        return None
    if cov >= STUB_MIN_COVERAGE and (cov > written + 0.15 or cov >= written and cov > written_head + 0.2 or best == 0 and cov >= written):
        return best
    # The question's subject ("Dockerfile") is what the stub's heading is about, and no written
    # passage has it in a title or heading: those mention it in passing (a path, a file name).
    subject = _subject(query)
    if subject and _names(subject, f"{hits[best].chunk.title} {hits[best].chunk.heading}") and not any(
        _names(subject, f"{hits[i].chunk.title} {hits[i].chunk.heading}")
        for i in range(min(depth, len(hits))) if i not in stubs and (usable is None or usable[i])
    ):
        return best
    return None


def _subject(query: Query) -> str | None:
    """The question's rarest term: what it is about, when it stands out (a Latin name)."""
    terms = [(t, w) for t, w in query.terms if w]
    if not terms:
        return None
    t = max(terms, key=lambda tw: tw[1])[0]
    return t if t.isascii() else None


def _names(term: str, text: str) -> bool:
    """Whether ``text`` names ``term`` as a word ("Dockerfile" is not "Docker")."""
    toks = set(lexical.TOKEN_RE.findall(lexical.fold(text)))
    return term in toks or lexical.ALIASES.get(term, "") in toks


def unnamed_in_passages(question: str, hits: list[Hit], usable: list[bool] | None = None, depth: int = 5) -> list[str]:
    """The question's names (``CRI-O``, ``Velero``) that none of the passages that may answer
    it mentions, as the question spells them.

    The articles may mention a name somewhere (so it is not "unmentioned"), yet when no passage
    found for the question does, those passages answer a neighbouring question: the CRI-O
    question gets Helm's configuration paths.  Then the honest answer is "not covered"."""
    names = named_terms(question)
    if not names:
        return []
    tokens: set[str] = set()
    for i, h in enumerate(hits[:depth]):
        if usable is not None and not usable[i]:
            continue
        for m in lexical.TOKEN_RE.finditer(lexical.fold(f"{h.chunk.title} {h.chunk.heading} {h.chunk.text}")):
            tokens.add(m.group())
            tokens.update(lexical.PART_RE.findall(m.group()))
    if not tokens:
        return []
    def named(w: str) -> bool:  # "Mac" is named by "macOS"; a short word only by itself
        return w in tokens or len(w) >= 3 and any(t.startswith(w) for t in tokens)

    return [as_asked(question, t) for t in names if not any(all(named(w) for w in ways) for ways in mention_forms(t))]


def see_source_answer(hits: list[Hit]) -> tuple[str, dict[int, list[list[int]]]] | None:
    """When the best passage is a diagram, a long code block or a table that cannot be quoted as
    prose, point at it instead of composing nothing (or borrowing sentences from elsewhere)."""
    what = {"diagram": ("图", "diagram"), "code": ("代码", "code"), "table": ("表格", "table")}.get(hits[0].chunk.kind) if hits else None
    if what is None:
        return None
    return SEE_SOURCE.format(what=what[0], what_en=what[1]) + "[1]", {}


def stub_answer(hits: list[Hit], i: int) -> tuple[str, dict[int, list[list[int]]]]:
    c = hits[i].chunk
    section = " > ".join(x for x in (c.title, c.heading) if x) or c.source
    return STUB_ANSWER.format(section=section) + f"[{i + 1}]", {}


_COMPARE_RE = re.compile(r"和|与|跟|同|及|vs\.?|VS|对比|相比|比较")
_COMPARE_END_RE = re.compile(r"(?:之间)?(?:的|有)?(?:什么|啥|哪些)?(?:区别|不同|差别|差异|异同)")


def compared_sides(query: Query) -> tuple[tuple[str, ...], ...]:
    """The question's terms on each side of "A 和 B 有什么区别": a unit naming both contrasts them."""
    m = _COMPARE_RE.search(query.text)
    if not m:
        return ()
    end = _COMPARE_END_RE.search(query.text, m.end())
    left = lexical.fold(query.text[: m.start()])
    right = lexical.fold(query.text[m.end() : end.start() if end else len(query.text)])
    held = [{t for t, w in query.terms if w and t in part} for part in (left, right)]
    # what both sides share ("helm search" hub / repo) tells them apart from nothing
    sides = tuple(tuple(t for t, _ in query.terms if t in held[i] and t not in held[1 - i]) for i in (0, 1))
    return sides if all(sides) else ()


def _pool_terms(query: Query, folded: list[str], headings: bool = False) -> tuple[tuple[str, float], ...]:
    """Question terms re-weighted by how rare they are among the candidates.

    The question's topic (the article's subject) occurs in nearly every unit of the right
    passage and says nothing about *which* unit answers; the words in few candidates do.
    ``headings``: also the terms in no candidate (a heading may hold them), as if in one."""
    n = len(folded)
    weights = []
    for t, w in query.terms:
        if not w:
            continue
        df = sum(1 for f in folded if t in f or (t in lexical.ALIASES and lexical.ALIASES[t] in f))
        if df or headings:
            weights.append((t, w * math.log(1 + n / max(df, 1))))
    return tuple(weights)


def _context(c: Candidate, pos: dict[tuple[int, int], tuple[Unit, str]]) -> str:
    """The folded text a sentence goes on about: the sentence before it and the opening sentence
    of its paragraph ("" for a paragraph's first sentence)."""
    prev = pos.get((c.hit, c.index - 1))
    if prev is None or prev[0].block != c.unit.block:
        return ""
    k = c.index - 1
    while (c.hit, k - 1) in pos and pos[(c.hit, k - 1)][0].block == c.unit.block:
        k -= 1
    return prev[1] if k == c.index - 1 else f"{prev[1]}\n{pos[(c.hit, k)][1]}"


def _candidates(query: Query, hits: list[Hit], max_passages: int, usable: list[bool] | None) -> list[Candidate]:
    kind = question_type(query.text)
    cands: list[Candidate] = []
    for hi, h in enumerate(hits[:max_passages]):
        if usable is not None and not usable[hi]:
            continue
        if h.chunk.is_stub or is_stub_text(h.chunk.text) or is_reference_section(h.chunk.heading):
            continue
        for ui, u in enumerate(split_units(h.chunk.text, getattr(h.chunk, "kind", "text"))):
            cands.append(Candidate(hi, ui, u))
    if not cands:
        return cands
    folded = [lexical.fold(c.unit.text) for c in cands]
    terms = _pool_terms(query, folded)
    top = max(hits[0].fused, 1e-9)
    # a passage's own heading says what its sentences are about ("跨 Namespace 部署" over "暂不支持。")
    headings = {i: lexical.fold(h.chunk.heading.rsplit(" > ", 1)[-1]) for i, h in enumerate(hits[:max_passages])}
    head_terms = _pool_terms(query, folded, headings=True)
    sides = compared_sides(query) if kind == "difference" else ()
    pos = {(c.hit, c.index): (c.unit, f) for c, f in zip(cands, folded)}
    for c, f in zip(cands, folded):
        lex = lexical.distinct_matched_weight(terms, f)
        lex += HEADING_SHARE * sum(w for t, w in head_terms if t in headings[c.hit] and t not in f)
        if c.unit.kind == "sent" and (context := _context(c, pos)):
            lex += CONTEXT_SHARE * sum(w for t, w in terms if t not in f and t in context and t not in headings[c.hit])
        score = lex * min(1.0, max(hits[c.hit].fused, 0.0) / top) ** RANK_POWER
        cue = answer_cue(kind, c.unit.text)
        if sides and all(any(t in f for t in side) for side in sides):
            cue = max(cue, 1.0)
        score *= 1 + CUE_WEIGHT[kind] * cue
        if c.unit.kind == "code":
            score *= CODE_FACTOR.get(kind, 0.5)
        elif is_meta_sentence(c.unit.text):
            score *= META_FACTOR
        elif is_rhetorical(c.unit.text):
            score *= QUESTION_FACTOR
        elif c.index == 0 and BACK_REFERENCE_RE.match(c.unit.text):
            score *= BACK_FACTOR
        c.score = score
    # a list of bare names no sentence introduces ("相关词汇：水平伸缩、垂直伸缩" as links) says nothing
    introduced = {(c.hit, k) for c in cands for k in c.unit.follows}
    for c in cands:
        if c.unit.kind == "item" and len(_shown(c.unit)) <= BARE_ITEM_CHARS and (c.hit, c.index) not in introduced:
            c.score *= META_FACTOR
    _remedies(hits, cands)
    if kind == "why":
        # "建议用控制器创建 Pod。这是因为……": the reason right after the sentence that matches the question
        by_pos = {(c.hit, c.index): c for c in cands}
        for c in cands:
            if c.unit.kind == "sent" and REASON_START_RE.match(c.unit.text):
                # "这是因为……" may point past one sentence of detail to the one the question restates
                for back in (1, 2) if THIS_REASON_RE.match(c.unit.text) else (1,):
                    prev = by_pos.get((c.hit, c.index - back))
                    if prev is not None:
                        c.score = max(c.score, REASON_GAIN * prev.score)
    if kind == "how" and PROBLEM_RE.search(query.text):
        # "……不生效怎么办？": the sentence that restates the failure ("直接更新 … Annotation 无法更新 Pod
        # 的 IP。") matches the question best; the remedy right after it ("请先将 …") answers
        by_pos = {(c.hit, c.index): c for c in cands}
        for c in cands:
            if c.unit.kind in ("sent", "item") and REMEDY_RE.search(c.unit.text) and not PROBLEM_RE.search(c.unit.text):
                for back in (1, 2):
                    prev = by_pos.get((c.hit, c.index - back))
                    if prev is not None and PROBLEM_RE.search(prev.unit.text):
                        c.score = max(c.score, REASON_GAIN * prev.score)
    if kind == "how":
        # a command block answers the sentence that introduces it ("查看虚悬镜像：" + the command),
        # or the heading right above it when nothing comes between ("### 查看上次启动的日志" + the command)
        by_pos = {(c.hit, c.index): c for c in cands}
        for c in cands:
            if c.unit.kind == "code":
                prev = by_pos.get((c.hit, c.index - 1))
                if prev is not None:
                    c.score = max(c.score, 0.9 * prev.score)
                    if not prev.unit.follows:
                        prev.unit.follows = [c.index]
                elif c.index == 0 and only_markup(hits[c.hit].chunk.text[: c.unit.start]):
                    lex = lexical.distinct_matched_weight(terms, headings[c.hit])
                    rank = min(1.0, max(hits[c.hit].fused, 0.0) / top) ** RANK_POWER
                    c.score = max(c.score, 0.9 * lex * rank * (1 + CUE_WEIGHT[kind] * answer_cue(kind, c.unit.text)))
    return cands


def _remedies(hits: list[Hit], cands: list[Candidate]) -> None:
    """A "现象" section restates the problem (it shares every word with the question); the
    sections after it under the same problem heading ("原因", "解决方法") answer it but share few
    words.  When both are among the passages, the symptom's units step aside and the remedy is
    read from its start: its units score as well as the symptom matched the question, less a
    little per unit, or by their own words when those match better ("第 5 步：清理残留端口")."""
    parents = {}
    for i, h in enumerate(hits):
        if is_symptom_section(h.chunk.heading):
            parents.setdefault((h.chunk.collection, h.chunk.doc_path, _parent(h.chunk.heading)), i)
    if not parents:
        return
    matched: dict[int, float] = {}  # symptom hit -> how well it matches the question
    for c in cands:
        if is_symptom_section(hits[c.hit].chunk.heading):
            matched[c.hit] = max(matched.get(c.hit, 0.0), c.score)
    remedy_of: dict[int, int] = {}
    for i, h in enumerate(hits):
        j = parents.get((h.chunk.collection, h.chunk.doc_path, _parent(h.chunk.heading)))
        if j is not None and i != j and not is_symptom_section(h.chunk.heading):
            remedy_of[i] = j
    own: dict[int, float] = {}  # remedy hit -> its best unit by the question's own words
    for c in cands:
        if c.hit in remedy_of:
            own[c.hit] = max(own.get(c.hit, 0.0), c.score)
    has_remedy = set(remedy_of.values())
    order: dict[int, int] = {}
    for c in cands:
        if c.hit in remedy_of:
            k = order[c.hit] = order.get(c.hit, -1) + 1
            base = REMEDY_SHARE * matched.get(remedy_of[c.hit], 0.0)
            if own[c.hit] < OWN_SHARE * base:  # the question names no step: read from the first
                c.score = max(c.score, base * REMEDY_DECAY ** k)
        elif is_symptom_section(hits[c.hit].chunk.heading):
            c.score *= 0.0 if c.hit in has_remedy else SYMPTOM_FACTOR


def _parent(heading: str) -> str:
    return heading.rsplit(" > ", 1)[0] if " > " in heading else ""


def _bound_cuts(text: str, cuts: list[int]) -> set[int]:
    """Clause boundaries a trimmed sentence should not start or end at: inside a condition and
    between it and the clause it conditions ("如果指定了 nodeSelector，DaemonSet Controller 将在……
    上创建 Pod" cut to either half says something else), and right before a consequence
    ("要跑 go 应用，那就……什么都不需要装")."""
    bound: set[int] = set()
    inner = cuts[1:-1]
    starts = {c: text[c:].lstrip() for c in [cuts[0]] + inner}
    k = 0
    points = [cuts[0]] + inner
    while k < len(points):
        c = points[k]
        if CONDITION_RE.match(starts[c]):
            # the condition runs until a clause opens with a main-clause word, or one clause
            end = next((j for j in range(k + 1, len(points)) if MAIN_CLAUSE_RE.match(starts[points[j]])), k + 1)
            bound.update(points[k + 1 : end + 1])
            k = max(end, k + 1)
            continue
        if k > 0 and CONSEQUENCE_RE.match(starts[c]):
            bound.add(c)
        k += 1
    return bound


def _trim(unit: Unit, terms: tuple[tuple[str, float], ...], budget: int, text: str) -> Unit | None:
    """The best run of clauses of an over-long sentence that fits ``budget``."""
    if unit.kind not in ("sent", "item") or len(unit.spans) != 1:
        return None
    a, b = unit.spans[0]
    cuts = [a] + [m.end() for m in CLAUSE_RE.finditer(text, a, b)] + [b]
    cuts = sorted(set(cuts))
    bound = _bound_cuts(text, cuts)
    best: tuple[float, int, int] | None = None
    for i in range(len(cuts) - 1):
        for j in range(i + 1, len(cuts)):
            if len(display(text[cuts[i] : cuts[j]])) > budget - 2:
                break
            w = lexical.distinct_matched_weight(terms, lexical.fold(text[cuts[i] : cuts[j]]))
            w *= SPLIT_FACTOR ** ((cuts[i] in bound) + (cuts[j] in bound))
            if best is None or w > best[0] or (w == best[0] and cuts[j] - cuts[i] > best[2] - best[1]):
                best = (w, cuts[i], cuts[j])
    if best is None:
        end = a + budget - 1
        return Unit(unit.kind, display(text[a:end]) + "…", [(a, end)], unit.block)
    _, s, e = best
    while s < e and text[s].isspace():
        s += 1
    shown = display(text[s:e]).rstrip("，,；;、")
    e = s + len(text[s:e].rstrip().rstrip("，,；;、"))
    return Unit(unit.kind, ("…" if s > a else "") + shown + ("…" if e < b else ""), [(s, e)], unit.block)


def _drop_dangling(chosen: list[tuple[Candidate, Unit]], hits: list[Hit]) -> list[tuple[Candidate, Unit]]:
    """The last guard: a quoted unit ending in "：" must be followed, in the answer, by what comes
    right after it in its passage (only layout between); otherwise it is dropped, whatever
    rule chose it (a figure that was removed, a block too long to quote)."""
    while True:
        for i, (c, u) in enumerate(chosen):
            if not LEAD_IN_RE.search(u.text):
                continue
            nxt = chosen[i + 1] if i + 1 < len(chosen) else None
            text = hits[c.hit].chunk.text
            if nxt is None or nxt[0].hit != c.hit or not only_markup(text[u.spans[-1][1] : nxt[1].start]):
                chosen = chosen[:i] + chosen[i + 1 :]
                break
        else:
            return chosen


def _antecedents(best: Candidate, by_pos: dict[tuple[int, int], Candidate], kind: str) -> list[Candidate]:
    """What the lead must be read after, earliest first: the sentence a pointing-back lead
    ("这意味着……") points to (the one before it, or the topic sentence of the paragraph before
    when it opens a paragraph); for a lead that answers the article's own question ("当然有，……")
    that question, after the problem it asks about (the topic sentence of the paragraph before)."""
    if best.unit.kind != "sent":
        return []

    def before(c: Candidate) -> Candidate | None:
        prev = by_pos.get((c.hit, c.index - 1))
        if prev is not None and prev.unit.block != c.unit.block:
            while (earlier := by_pos.get((prev.hit, prev.index - 1))) is not None and earlier.unit.block == prev.unit.block:
                prev = earlier
        return prev

    def readable(c: Candidate | None) -> bool:
        return (c is not None and c.unit.kind in ("sent", "item") and not c.unit.lead_in
                and not is_meta_sentence(c.unit.text))

    if refers_back(best.unit.text) or kind == "why" and CONCLUSION_RE.match(best.unit.text):
        prev = before(best)
        return [prev] if readable(prev) else []
    if answers_own_question(best.unit.text):
        asked = by_pos.get((best.hit, best.index - 1))
        if not (readable(asked) and is_rhetorical(asked.unit.text) and asked.unit.block == best.unit.block):
            return []
        problem = before(asked)
        if readable(problem) and problem.unit.block != asked.unit.block and not is_rhetorical(problem.unit.text):
            return [problem, asked]
        return [asked]
    return []


def _shown(u: Unit) -> str:
    if u.kind != "code":
        return u.text
    if "\n" not in u.text and len(u.text) <= 120:
        return f"`{u.text.strip()}`"
    return "\n```\n" + u.text + "\n```\n"


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
    cands = _candidates(query, hits, max_passages, usable)
    if not cands:
        return "", {}
    by_pos = {(c.hit, c.index): c for c in cands}

    def group(c: Candidate) -> list[Candidate]:
        """A unit and what it introduces; an introduced unit that itself ends in "：" without
        its own continuation (a step whose long command is not quotable) ends the group."""
        out = [c]
        for k in c.unit.follows:
            f = by_pos.get((c.hit, k))
            if f is None or f.unit.lead_in and not any((c.hit, j) in by_pos for j in f.unit.follows):
                break
            out.append(f)
            if f.unit.lead_in:  # "1. 在 Cluster 对象中设置：" brings the command it introduces
                out.extend(by_pos[(c.hit, j)] for j in f.unit.follows if (c.hit, j) in by_pos and by_pos[(c.hit, j)] not in out)
        return out

    def complete(c: Candidate) -> bool:
        """A unit ending in "：" is only quoted with at least the first thing it introduces."""
        g = group(c)
        return not c.unit.lead_in or len(g) > 1 and len(_shown(g[0].unit)) + len(_shown(g[1].unit)) <= budget

    kind = question_type(query.text)
    ranked = []
    for c in sorted(cands, key=lambda c: (-c.score, c.hit, c.index)):
        if not complete(c):
            # what it introduces does not fit: the sentence alone, when it says something alone
            # ... and one that names the command answers a how question in full
            names_command = kind == "how" and answer_cue(kind, c.unit.text) >= HOW_CODE
            alone = closed(c.unit, hits[c.hit].chunk.text, says_how=names_command)
            if alone is None:
                continue
            c = Candidate(c.hit, c.index, alone, c.score * (1.0 if names_command else CLOSED_FACTOR))
            by_pos[(c.hit, c.index)] = c
        ranked.append(c)
    if not ranked:
        return "", {}
    best = ranked[0]
    if best.score <= 0:
        # nothing shares a word with the question (a dense-only match): read the top passage
        best = next((c for c in ranked if not is_meta_sentence(c.unit.text) and c.unit.kind != "code"), ranked[0])
    terms = _pool_terms(query, [lexical.fold(c.unit.text) for c in cands])

    chosen: list[tuple[Candidate, Unit]] = []
    taken: set[tuple[int, int]] = set()
    used = 0

    # the lead: the best unit, with what it introduces as far as the budget allows; a sentence
    # that points back ("这意味着……") is read after the sentence it points to (the one before it,
    # or the topic sentence of the paragraph before when it opens a paragraph)
    lead = group(best)
    before = _antecedents(best, by_pos, kind)
    # what the lead points back to stays whole; the lead itself is then cut to what is left
    while before and sum(len(_shown(c.unit)) for c in before) + MIN_TRIMMED > budget:
        before = before[1:]
    lead = before + lead
    for k, c in enumerate(lead):
        length = len(_shown(c.unit))
        if used + length > budget:
            if k <= len(before) and budget - used >= MIN_TRIMMED:
                trimmed = _trim(c.unit, terms, budget - used, hits[c.hit].chunk.text)
                if trimmed is not None:
                    chosen.append((c, trimmed))
                    taken.add((c.hit, c.index))
                    used += len(trimmed.text)
            break
        chosen.append((c, c.unit))
        taken.add((c.hit, c.index))
        used += length
    n_lead = len(chosen)

    # supporting units, best first, shown in reading order after the lead
    top = max(best.score, 1e-9)
    for c in ranked:
        if (c.hit, c.index) in taken or c.score <= 0:
            continue
        if c.score < MIN_RATIO * top:
            break
        if c.hit != best.hit and c.score < OTHER_RATIO * top:
            continue
        if is_meta_sentence(c.unit.text) or c.unit.kind == "code" and question_type(query.text) != "how":
            continue
        if not complete(c):
            continue
        grp = [x for x in group(c) if (x.hit, x.index) not in taken]
        if answers_own_question(c.unit.text) and (c.hit, c.index - 1) not in taken:
            # "当然不，……" is read after the question it answers
            asked = by_pos.get((c.hit, c.index - 1))
            if asked is None:
                continue
            grp = [asked] + grp
        length = sum(len(_shown(x.unit)) for x in grp)
        if used + length > budget:
            continue
        for x in grp:
            chosen.append((x, x.unit))
            taken.add((x.hit, x.index))
        used += length
    rest = sorted(chosen[n_lead:], key=lambda cu: (cu[0].hit, cu[0].unit.start))
    chosen = _drop_dangling(chosen[:n_lead] + rest, hits)
    if not chosen:
        return "", {}

    parts: list[str] = []
    highlights: dict[int, list[list[int]]] = {}
    kinds: list[bool] = []  # whether each part is a list item (or table row)
    for i, (c, u) in enumerate(chosen):
        parts.append(_shown(u))
        kinds.append(u.kind in ("item", "row"))
        highlights.setdefault(c.hit, []).extend([a, b] for a, b in u.spans)
        nxt = chosen[i + 1][0] if i + 1 < len(chosen) else None
        if nxt is None or nxt.hit != c.hit:
            parts.append(f"[{c.hit + 1}]")
            kinds.append(False)
    for spans in highlights.values():
        spans.sort()
    text = ""
    prev_item = False
    for p, is_item in zip(parts, kinds):
        if prev_item and not p.startswith(("[", "\n")) and not END_PUNCT_RE.search(text):
            text += "；" if is_item else "。"  # list items quoted one after another stay apart
        elif text and not p.startswith(("[", "\n")) and (text[-1].isascii() and p[0].isascii() and not text.endswith("\n")
                                                      or text.endswith("`") and not END_PUNCT_RE.match(p[0])):
            text += " "  # between Latin words, and after an inline command ("`kubectl logs -p` 确认……")
        text += p
        prev_item = is_item
    return text.strip(), highlights
