"""``qa eval``: measure retrieval and answers on a SQuAD-format question set.

Each paragraph becomes one article (chunked by the normal chunker) in a temporary
index, optionally beside a folder of distractor articles, and every question goes
through the same code path as ``/ask``.  Metrics are computed from plain lists
and dicts (as sentence-transformers' InformationRetrievalEvaluator does) so they
can be unit-tested on a tiny hand-made file.
"""

from __future__ import annotations

import re
import shutil
import statistics
import tempfile
import time
import unicodedata
from pathlib import Path

from qa import cues, evalsets, lexical
from qa.units import only_markup
from qa.config import Settings
from qa.evalsets import Dataset, DatasetError, Question, RealQuestion, RealSet  # noqa: F401  (re-exported)

KS = (1, 3, 5, 10)
PUNCT_RE = re.compile(r"[\s\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65!-/:-@\[-`{-~·「」『』“”‘’—…]+")


def normalize_answer(text: str) -> str:
    """Width, case, script and punctuation folding used to match gold answers."""
    return PUNCT_RE.sub("", lexical.fold(unicodedata.normalize("NFKC", text)))


def load_squad(path: Path, limit: int | None = None, prefix: str = "p", max_chars: int = 500,
               need_answers: bool = True) -> Dataset:
    """SQuAD JSON -> one article per paragraph; unusable records land in ``Dataset.skipped``."""
    return evalsets.load_squad(path, limit, prefix=prefix, max_chars=max_chars, need_answers=need_answers)


def passage_hit(question: Question, doc_path: str, text: str) -> bool:
    """A cited passage counts when it comes from the question's paragraph and holds a gold answer."""
    if Path(doc_path).name != question.doc:
        return False
    norm = normalize_answer(text)
    return any(normalize_answer(a) in norm for a in question.answers)


def answer_hit(question: Question, answer: str) -> bool:
    norm = normalize_answer(answer)
    return any(normalize_answer(a) and normalize_answer(a) in norm for a in question.answers)


def ranking_metrics(relevance: list[list[bool]]) -> dict[str, float]:
    """hit@k and MRR@10 from, per question, the relevance of its ranked passages."""
    n = max(len(relevance), 1)
    out: dict[str, float] = {}
    for k in KS:
        out[f"hit@{k}"] = sum(any(r[:k]) for r in relevance) / n
    mrr = 0.0
    for r in relevance:
        for i, rel in enumerate(r[:10]):
            if rel:
                mrr += 1 / (i + 1)
                break
    out["mrr@10"] = mrr / n
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    vs = sorted(values)
    return vs[min(len(vs) - 1, int(round(q * (len(vs) - 1))))]


def write_corpus(ds: Dataset, folder: Path) -> None:
    """One article per paragraph; articles of an earlier run in the same folder are removed
    (a kept index re-used for another set must not keep the old set's paragraphs)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.md"):
        if old.name not in ds.docs:
            old.unlink()
    for name, (title, context) in ds.docs.items():
        safe_title = title.replace('"', "'").replace("\n", " ")
        (folder / name).write_text(f'---\ntitle: "{safe_title}"\n---\n\n{context}\n', encoding="utf-8")


def build_eval_index(ds: Dataset, settings: Settings, index_dir: Path, distractors: Path | None, progress: bool) -> dict:
    from qa.ingest import ingest

    work = index_dir.parent / "eval-corpus"
    write_corpus(ds, work)
    t = time.perf_counter()
    r1 = ingest(work, settings, index_dir=index_dir, collection="eval", progress=progress)
    r2 = ingest(distractors, settings, index_dir=index_dir, collection="distractors", progress=progress) if distractors else None
    return {
        "seconds": round(time.perf_counter() - t, 1),
        "passages": (r2 or r1).chunks_total,
        "distractor_files": r2.files_seen if r2 else 0,
    }


def evaluate(
    dataset: Path,
    settings: Settings,
    methods: list[str] | None = None,
    distractors: Path | None = None,
    unanswerable: Path | None = None,
    limit: int | None = None,
    progress: bool = False,
    keep_index: Path | None = None,
    answer_budgets: tuple[int, ...] = (),
    corpora: dict[str, Path] | None = None,
    index: Path | None = None,
) -> dict:
    """Evaluate a SQuAD JSON file or a real-question JSONL file (detected from the content).

    ``index``: an existing index to ask as is (read-only; nothing is ingested): for a SQuAD
    set one built by an earlier ``keep_index`` run on the same file, for a real set one
    holding a collection per corpus the set names.  ``corpora`` (name -> folder) are what
    a real set's index is built from, and where its gold spans are checked."""
    if evalsets.detect_format(dataset) == "real":
        return evaluate_real(dataset, settings, methods, corpora or {}, limit, progress, keep_index,
                             answer_budgets, index)
    from qa.assistant import Assistant

    ds = load_squad(dataset, limit, max_chars=settings.max_question_chars)
    methods = methods or ["hybrid"]
    tmp = Path(tempfile.mkdtemp(prefix="qa-eval-"))
    index_dir = index or keep_index or tmp / "index"
    try:
        eval_settings = settings.model_copy(update={"index_dir": index_dir})
        build = ({"seconds": 0.0, "passages": None, "distractor_files": None, "reused": str(index)} if index
                 else build_eval_index(ds, eval_settings, index_dir, distractors, progress))
        assistant = Assistant.open(index_dir, settings=eval_settings)
        build["passages"] = assistant.reader.n_chunks  # what is searched (an unchanged re-ingest reports 0)
        skipped = [dict(s, set="dataset") for s in ds.skipped]
        unans: list[Question] = []
        if unanswerable:
            u = load_squad(unanswerable, limit, prefix="u", max_chars=settings.max_question_chars, need_answers=False)
            unans = u.questions
            skipped += [dict(s, set="unanswerable") for s in u.skipped]
        results = {}
        for method in methods:
            results[method] = run_method(assistant, ds.questions, unans, method, progress, answer_budgets, skipped)
        out = {
            "format": "squad",
            "dataset": str(dataset),
            "questions": len(ds.questions),
            "paragraphs": len(ds.docs),
            "distractors": str(distractors) if distractors else None,
            "unanswerable": str(unanswerable) if unanswerable else None,
            "index": build,
            "model": assistant.reader.model,
            "settings": _settings_summary(settings),
        }
        _merge_methods(out, methods, results)
        _add_skipped(out, skipped)
        return out
    finally:
        if keep_index is None:
            shutil.rmtree(tmp, ignore_errors=True)


def _settings_summary(settings: Settings) -> dict:
    return {"chunk_size": settings.chunk_size, "answer_chars": settings.answer_chars,
            "min_confidence": settings.min_confidence, "candidates": settings.candidates,
            "rrf_k": settings.rrf_k}


def _merge_methods(out: dict, methods: list[str], results: dict) -> None:
    if len(methods) == 1:
        out.update(results[methods[0]])
        out["method"] = methods[0]
    else:
        out["methods"] = results


def _add_skipped(out: dict, skipped: list[dict]) -> None:
    """``skipped``: every record left out, with where it was and why; plus counts by reason."""
    by_reason: dict[str, int] = {}
    for s in skipped:
        by_reason[s["reason"]] = by_reason.get(s["reason"], 0) + 1
    out["skipped"] = skipped
    out["skipped_count"] = len(skipped)
    out["skipped_by_reason"] = by_reason


def _plain(answer: str) -> str:
    return re.sub(r"\[\d+\]", "", answer)


class AnswerStats:
    """Answer-side metrics shared by every set: answer-hit (default budget and the extra
    budgets), lead-sentence hit, answer-hit at 80 characters, meta first sentences and
    structural faults (diagram source, lone fences, dangling colons)."""

    SHORT = 80

    def __init__(self, budgets: tuple[int, ...] = ()):
        self.budgets = budgets
        self.n = 0
        self.hits = 0
        self.lead = 0
        self.short = 0
        self.refused = 0
        self.lengths: list[int] = []
        self.budget_hits = {b: 0 for b in budgets}
        self.budget_lengths: dict[int, list[int]] = {b: [] for b in budgets}
        self.given = 0
        self.meta_first = 0

    def add(self, assistant, question: str, answers: list[str], hits, ans) -> dict:
        """Score one answerable question; returns the per-question facts."""
        self.n += 1
        row = {"answer_hit": False, "lead_hit": False, "answer_hit@80": False, "meta_first": False}
        if ans.abstained:
            self.refused += 1
            return row
        self.given += 1
        self.lengths.append(len(_plain(ans.answer)))
        row["answer_hit"] = _contains(answers, ans.answer)
        first = cues.first_sentence(ans.answer)
        row["lead_hit"] = _contains(answers, first)
        row["meta_first"] = cues.is_meta_sentence(first)
        short = assistant.answer(question, hits[:5], answer_chars=self.SHORT).answer
        row["answer_hit@80"] = _contains(answers, short)
        self.hits += row["answer_hit"]
        self.lead += row["lead_hit"]
        self.short += row["answer_hit@80"]
        self.meta_first += row["meta_first"]
        for b in self.budgets:
            text = assistant.answer(question, hits[:5], answer_chars=b).answer
            self.budget_lengths[b].append(len(_plain(text)))
            self.budget_hits[b] += _contains(answers, text)
        return row

    def metrics(self) -> dict:
        n = max(self.n, 1)
        out = {
            "answer_hit": round(self.hits / n, 4),
            "answer_chars_mean": round(statistics.mean(self.lengths), 1) if self.lengths else 0.0,
            "lead_sentence_hit": round(self.lead / n, 4),
            "answer_hit@80": round(self.short / n, 4),
            "meta_first_sentence": round(self.meta_first / max(self.given, 1), 4),
            "refused_answerable": round(self.refused / n, 4),
        }
        if self.budgets:
            out["answer_budgets"] = [
                {"budget": b, "answer_hit": round(self.budget_hits[b] / n, 4),
                 "answer_chars_mean": round(statistics.mean(self.budget_lengths[b]), 1) if self.budget_lengths[b] else 0.0}
                for b in self.budgets
            ]
        return out


def _contains(answers: list[str], text: str) -> bool:
    norm = normalize_answer(text)
    return any(normalize_answer(a) and normalize_answer(a) in norm for a in answers)


class FaultCounts:
    """Answers (not abstentions) that quote diagram source, a lone code fence, or a
    sentence ending in '：' without what it introduces (see qa.cues)."""

    def __init__(self):
        self.given = 0
        self.diagram = 0
        self.fence = 0
        self.colon = 0

    def add(self, ans) -> dict:
        if ans.abstained:
            return {}
        self.given += 1
        row = {"diagram_source": cues.has_diagram_source(ans.answer), "lone_fence": cues.has_lone_fence(ans.answer),
               "dangling_colon": dangling_colon(ans)}
        self.diagram += row["diagram_source"]
        self.fence += row["lone_fence"]
        self.colon += row["dangling_colon"]
        return row

    def metrics(self) -> dict:
        return {"answers_given": self.given, "answers_with_diagram_source": self.diagram,
                "answers_with_lone_fence": self.fence, "answers_with_dangling_colon": self.colon}


def dangling_colon(ans) -> bool:
    """A quoted sentence ends in '：' (or ':') and what follows it in its passage is not quoted
    (only layout — a fence, a list marker, table pipes — may lie between them), or the answer text itself stops at a colon before a citation marker or its end."""
    if cues.has_dangling_colon(ans.answer):
        return True
    for c in ans.citations:
        spans = sorted(tuple(h) for h in c.highlights)
        for a, b in spans:
            if not c.text[a:b].rstrip().endswith(("：", ":")):
                continue
            nxt = min((x for x, _ in spans if x >= b), default=None)
            if nxt is None or not only_markup(c.text[b:nxt]):
                return True
    return False


def run_method(
    assistant, questions: list[Question], unanswerable: list[Question], method: str, progress: bool,
    answer_budgets: tuple[int, ...] = (), skipped: list[dict] | None = None,
) -> dict:
    """Rank, answer and abstain as ``/ask`` does.  ``answer_budgets``: extra answer length
    budgets to report answer-hit for (a short answer for chat, say), with the same retrieval.
    A question the assistant refuses to take (QuestionError) is skipped, not fatal."""
    from qa.assistant import QuestionError

    skipped = skipped if skipped is not None else []
    relevance: list[list[bool]] = []
    stats = AnswerStats(answer_budgets)
    faults = FaultCounts()
    latencies: list[float] = []
    conf_answerable: list[float] = []
    conf_unanswerable: list[float] = []
    bar = _progress(progress, f"eval {method}", len(questions) + len(unanswerable))
    for q in questions:
        t = time.perf_counter()
        try:
            question = assistant.validate(q.question)
            hits, timings = assistant.retrieve(question, top_k=10, method=method)
            ans = assistant.answer(question, hits[:5], timings)
        except QuestionError as exc:
            skipped.append({"id": q.qid, "where": "asking", "reason": str(exc), "set": "dataset"})
            bar.advance()
            continue
        latencies.append((time.perf_counter() - t) * 1000)
        relevance.append([passage_hit(q, h.chunk.doc_path, h.chunk.text) for h in hits])
        conf_answerable.append(ans.confidence)
        stats.add(assistant, question, q.answers, hits, ans)
        faults.add(ans)
        bar.advance()
    abstained = 0
    for q in unanswerable:
        try:
            a = assistant.ask(q.question, top_k=5, method=method)
        except QuestionError as exc:
            skipped.append({"id": q.qid, "where": "asking", "reason": str(exc), "set": "unanswerable"})
            bar.advance()
            continue
        abstained += a.abstained
        conf_unanswerable.append(a.confidence)
        bar.advance()
    bar.close()
    out = {k: round(v, 4) for k, v in ranking_metrics(relevance).items()}
    out.update(stats.metrics())
    out.update({"latency_ms_p50": round(percentile(latencies, 0.5), 1),
                "latency_ms_p95": round(percentile(latencies, 0.95), 1)})
    out.update(faults.metrics())
    if unanswerable:
        out["abstained_unanswerable"] = round(abstained / max(len(conf_unanswerable), 1), 4)
        out["unanswerable_questions"] = len(conf_unanswerable)
        out["abstention_curve"] = _abstention_curve(conf_answerable, conf_unanswerable)
    return out


def _abstention_curve(conf_answerable: list[float], conf_unanswerable: list[float]) -> list[dict]:
    """What other QA_MIN_CONFIDENCE values would do, to choose the threshold from data."""
    return [
        {
            "min_confidence": t,
            "abstained_unanswerable": round(sum(c < t for c in conf_unanswerable) / max(len(conf_unanswerable), 1), 4),
            "refused_answerable": round(sum(c < t for c in conf_answerable) / max(len(conf_answerable), 1), 4),
        }
        for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    ]


# --- the real-question set: file + line-range relevance over named corpora -----------------

def lines_overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def source_hit(q: RealQuestion, chunk) -> bool:
    """A passage is relevant when it comes from the gold file of the gold corpus and its
    source lines overlap the gold line range."""
    return (chunk.collection == q.corpus and chunk.doc_path == q.file
            and lines_overlap((chunk.line_start, chunk.line_end), q.lines))


def cites_gold(q: RealQuestion, ans) -> bool:
    """The answer's text refers ([n]) to a citation from the gold file and lines."""
    used = {int(n) for n in re.findall(r"\[(\d+)\]", ans.answer)}
    return any(
        c.n in used and c.collection == q.corpus and (c.path == q.file or c.path.endswith("/" + q.file))
        and lines_overlap((c.line_start, c.line_end), q.lines)
        for c in ans.citations
    )


def file_hit(q: RealQuestion, chunk) -> bool:
    return chunk.collection == q.corpus and chunk.doc_path == q.file


def build_real_index(corpora: dict[str, Path], settings: Settings, index_dir: Path, progress: bool) -> dict:
    """One collection per corpus, named as in the set; a kept index is updated incrementally."""
    from qa.ingest import ingest

    t = time.perf_counter()
    report = None
    files = {}
    for name, folder in corpora.items():
        report = ingest(folder, settings, index_dir=index_dir, collection=name, progress=progress)
        files[name] = report.files_seen
    return {"seconds": round(time.perf_counter() - t, 1), "passages": report.chunks_total if report else 0,
            "files": files}


def evaluate_real(
    dataset: Path,
    settings: Settings,
    methods: list[str] | None,
    corpora: dict[str, Path],
    limit: int | None = None,
    progress: bool = False,
    keep_index: Path | None = None,
    answer_budgets: tuple[int, ...] = (),
    index: Path | None = None,
) -> dict:
    from qa.assistant import Assistant

    methods = methods or ["hybrid"]
    rs = evalsets.load_real(dataset, limit, settings.max_question_chars, roots=corpora or None)
    needed = sorted({q.corpus for q in rs.questions if q.corpus})
    tmp = Path(tempfile.mkdtemp(prefix="qa-eval-"))
    index_dir = index or keep_index or tmp / "index"
    try:
        if index is None:
            missing = [c for c in needed if c not in corpora]
            if missing:
                raise DatasetError(
                    f"{dataset} names the corpora {', '.join(needed)}: give "
                    + " ".join(f"--corpus {c}=DIR" for c in missing)
                    + " (the folder of each), or ask an existing index that has them with --index DIR"
                )
        eval_settings = settings.model_copy(update={"index_dir": index_dir})
        build = ({"seconds": 0.0, "reused": str(index)} if index
                 else build_real_index(corpora, eval_settings, index_dir, progress))
        assistant = Assistant.open(index_dir, settings=eval_settings)
        build["passages"] = assistant.reader.n_chunks
        docs = {(d["collection"], d["path"]) for d in assistant.reader.documents()}
        present = {c for c, _ in docs}
        absent = [c for c in needed if c not in present]
        if absent:
            raise DatasetError(f"the index in {index_dir}/ has no collection {', '.join(absent)} "
                               f"(it has {', '.join(sorted(present)) or 'none'})")
        keep = []
        for q in rs.questions:
            if q.corpus and (q.corpus, q.file) not in docs:
                rs.skipped.append({"id": q.qid, "where": f"index ({q.file})", "reason": "file not in the index"})
            else:
                keep.append(q)
        rs.questions = keep
        results = {m: run_real(assistant, rs, m, progress, answer_budgets) for m in methods}
        out = {
            "format": "real",
            "dataset": str(dataset),
            "questions": len(rs.of("answerable")),
            "unanswerable_questions": len(rs.of("unanswerable")),
            "stub_questions": len(rs.of("stub")),
            "corpora": {k: str(v) for k, v in corpora.items()},
            "index": build,
            "model": assistant.reader.model,
            "settings": _settings_summary(settings),
        }
        _merge_methods(out, methods, results)
        _add_skipped(out, rs.skipped)
        return out
    finally:
        if keep_index is None:
            shutil.rmtree(tmp, ignore_errors=True)


def run_real(assistant, rs: RealSet, method: str, progress: bool, answer_budgets: tuple[int, ...] = ()) -> dict:
    """Every question of a real set through retrieve + answer (top 10 ranked, 5 cited, as
    /ask); per-question facts go to ``per_question`` for reading and comparing runs."""
    from qa.assistant import QuestionError

    relevance: list[list[bool]] = []
    file_first: list[bool] = []
    stats = AnswerStats(answer_budgets)
    faults = FaultCounts()
    latencies: list[float] = []
    per_question: list[dict] = []
    conf = {"answerable": [], "unanswerable": []}
    abstained_unans = 0
    stub_status = 0
    stub_cited = 0
    by_type: dict[str, list[int]] = {}
    bar = _progress(progress, f"eval {method}", len(rs.questions))
    for q in rs.questions:
        t = time.perf_counter()
        try:
            question = assistant.validate(q.question)
            hits, timings = assistant.retrieve(question, top_k=10, method=method)
            ans = assistant.answer(question, hits[:5], timings)
        except QuestionError as exc:
            rs.skipped.append({"id": q.qid, "where": "asking", "reason": str(exc)})
            bar.advance()
            continue
        latencies.append((time.perf_counter() - t) * 1000)
        row = {"id": q.qid, "kind": q.kind, "type": q.type, "question": q.question, "status": ans.status,
               "abstained": ans.abstained, "confidence": ans.confidence, "answer": ans.answer,
               "top": [f"{h.chunk.collection}:{h.chunk.doc_path}:{h.chunk.line_start}-{h.chunk.line_end}" for h in hits[:3]]}
        if q.kind == "answerable":
            rel = [source_hit(q, h.chunk) for h in hits]
            relevance.append(rel)
            file_first.append(bool(hits) and file_hit(q, hits[0].chunk))
            conf["answerable"].append(ans.confidence)
            row.update(stats.add(assistant, question, q.answers, hits, ans))
            row["hit@1"] = bool(rel[:1] and rel[0])
            row["file_hit@1"] = file_first[-1]
            tally = by_type.setdefault(q.type, [0, 0, 0])
            tally[0] += 1
            tally[1] += row["answer_hit"]
            tally[2] += row["lead_hit"]
        elif q.kind == "unanswerable":
            conf["unanswerable"].append(ans.confidence)
            abstained_unans += ans.abstained
        else:
            stub_status += ans.status == "stub"
            cited = cites_gold(q, ans)
            stub_cited += cited
            row["stub_section_cited"] = cited
        row.update(faults.add(ans))
        per_question.append(row)
        bar.advance()
    bar.close()
    out = {k: round(v, 4) for k, v in ranking_metrics(relevance).items()}
    out["file_hit@1"] = round(sum(file_first) / max(len(file_first), 1), 4)
    out.update(stats.metrics())
    out.update({"latency_ms_p50": round(percentile(latencies, 0.5), 1),
                "latency_ms_p95": round(percentile(latencies, 0.95), 1)})
    n_un = len(conf["unanswerable"])
    n_stub = sum(1 for r in per_question if r["kind"] == "stub")
    out["abstained_unanswerable"] = round(abstained_unans / max(n_un, 1), 4)
    out["stub_status"] = round(stub_status / max(n_stub, 1), 4)
    out["stub_section_cited"] = round(stub_cited / max(n_stub, 1), 4)
    out.update(faults.metrics())
    out["by_type"] = {t: {"questions": v[0], "answer_hit": round(v[1] / v[0], 4), "lead_sentence_hit": round(v[2] / v[0], 4)}
                      for t, v in sorted(by_type.items())}
    out["abstention_curve"] = _abstention_curve(conf["answerable"], conf["unanswerable"])
    out["per_question"] = per_question
    return out


class _progress:
    """A rich progress bar, or nothing when output is not a terminal."""

    def __init__(self, enabled: bool, label: str, total: int):
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            self.bar.start()
            self.task = self.bar.add_task(label, total=total)

    def advance(self) -> None:
        if self.bar:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
