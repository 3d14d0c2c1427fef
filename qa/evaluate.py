"""``qa eval``: measure retrieval and answers on a SQuAD-format question set.

Each paragraph becomes one article (chunked by the normal chunker) in a temporary
index, optionally beside a folder of distractor articles, and every question goes
through the same code path as ``/ask``.  Metrics are computed from plain lists
and dicts (as sentence-transformers' InformationRetrievalEvaluator does) so they
can be unit-tested on a tiny hand-made file.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from qa import lexical
from qa.config import Settings

KS = (1, 3, 5, 10)
PUNCT_RE = re.compile(r"[\s\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65!-/:-@\[-`{-~·「」『』“”‘’—…]+")


@dataclass
class Question:
    qid: str
    question: str
    answers: list[str]
    doc: str  # the article file of its paragraph


@dataclass
class Dataset:
    docs: dict[str, tuple[str, str]] = field(default_factory=dict)  # file -> (title, context)
    questions: list[Question] = field(default_factory=list)


def normalize_answer(text: str) -> str:
    """Width, case, script and punctuation folding used to match gold answers."""
    return PUNCT_RE.sub("", lexical.fold(unicodedata.normalize("NFKC", text)))


def load_squad(path: Path, limit: int | None = None, prefix: str = "p") -> Dataset:
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    ds = Dataset()
    n = 0
    for article in data:
        title = str(article.get("title") or "")
        for para in article.get("paragraphs", []):
            name = f"{prefix}{n:05d}.md"
            n += 1
            ds.docs[name] = (title or name, para["context"])
            for qa in para.get("qas", []):
                answers = [a["text"] for a in qa.get("answers", []) if a.get("text", "").strip()]
                if answers:
                    ds.questions.append(Question(str(qa.get("id", len(ds.questions))), qa["question"], answers, name))
    if limit:
        ds.questions = ds.questions[:limit]
    return ds


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
) -> dict:
    from qa.assistant import Assistant

    ds = load_squad(dataset, limit)
    methods = methods or ["hybrid"]
    tmp = Path(tempfile.mkdtemp(prefix="qa-eval-"))
    index_dir = keep_index or tmp / "index"
    try:
        eval_settings = settings.model_copy(update={"index_dir": index_dir})
        build = build_eval_index(ds, eval_settings, index_dir, distractors, progress)
        bot = Assistant.open(index_dir, settings=eval_settings)
        unans = load_squad(unanswerable, limit, prefix="u").questions if unanswerable else []
        results = {}
        for method in methods:
            results[method] = run_method(bot, ds.questions, unans, method, progress, answer_budgets)
        out = {
            "dataset": str(dataset),
            "questions": len(ds.questions),
            "paragraphs": len(ds.docs),
            "distractors": str(distractors) if distractors else None,
            "unanswerable": str(unanswerable) if unanswerable else None,
            "index": build,
            "model": bot.reader.model,
            "settings": {"chunk_size": settings.chunk_size, "answer_chars": settings.answer_chars,
                         "min_confidence": settings.min_confidence, "candidates": settings.candidates,
                         "rrf_k": settings.rrf_k},
        }
        if len(methods) == 1:
            out.update(results[methods[0]])
            out["method"] = methods[0]
        else:
            out["methods"] = results
        return out
    finally:
        if keep_index is None:
            shutil.rmtree(tmp, ignore_errors=True)


def run_method(
    bot, questions: list[Question], unanswerable: list[Question], method: str, progress: bool,
    answer_budgets: tuple[int, ...] = (),
) -> dict:
    """Rank, answer and abstain as ``/ask`` does.  ``answer_budgets``: extra answer length
    budgets to report answer-hit for (a short answer for chat, say), with the same retrieval."""
    relevance: list[list[bool]] = []
    budget_hits = {b: 0 for b in answer_budgets}
    budget_lengths: dict[int, list[int]] = {b: [] for b in answer_budgets}
    ans_hits = 0
    lengths: list[int] = []
    latencies: list[float] = []
    refused = 0
    conf_answerable: list[float] = []
    conf_unanswerable: list[float] = []
    bar = _progress(progress, f"eval {method}", len(questions) + len(unanswerable))
    for q in questions:
        t = time.perf_counter()
        hits, timings = bot.retrieve(q.question, top_k=10, method=method)
        ans = bot.answer(q.question, hits[:5], timings)
        latencies.append((time.perf_counter() - t) * 1000)
        relevance.append([passage_hit(q, h.chunk.doc_path, h.chunk.text) for h in hits])
        conf_answerable.append(ans.confidence)
        if ans.abstained:
            refused += 1
        else:
            lengths.append(len(re.sub(r"\[\d+\]", "", ans.answer)))
            ans_hits += answer_hit(q, ans.answer)
            for b in answer_budgets:
                short = bot.answer(q.question, hits[:5], answer_chars=b).answer
                budget_lengths[b].append(len(re.sub(r"\[\d+\]", "", short)))
                budget_hits[b] += answer_hit(q, short)
        bar.advance()
    abstained = 0
    for q in unanswerable:
        a = bot.ask(q.question, top_k=5, method=method)
        abstained += a.abstained
        conf_unanswerable.append(a.confidence)
        bar.advance()
    bar.close()
    n = max(len(questions), 1)
    out = {k: round(v, 4) for k, v in ranking_metrics(relevance).items()}
    out.update(
        {
            "answer_hit": round(ans_hits / n, 4),
            "answer_chars_mean": round(statistics.mean(lengths), 1) if lengths else 0.0,
            "latency_ms_p50": round(percentile(latencies, 0.5), 1),
            "latency_ms_p95": round(percentile(latencies, 0.95), 1),
            "refused_answerable": round(refused / n, 4),
        }
    )
    if answer_budgets:
        out["answer_budgets"] = [
            {"budget": b, "answer_hit": round(budget_hits[b] / n, 4),
             "answer_chars_mean": round(statistics.mean(budget_lengths[b]), 1) if budget_lengths[b] else 0.0}
            for b in answer_budgets
        ]
    if unanswerable:
        out["abstained_unanswerable"] = round(abstained / len(unanswerable), 4)
        out["unanswerable_questions"] = len(unanswerable)
        # what other QA_MIN_CONFIDENCE values would do, to choose the threshold from data
        out["abstention_curve"] = [
            {
                "min_confidence": t,
                "abstained_unanswerable": round(sum(c < t for c in conf_unanswerable) / len(conf_unanswerable), 4),
                "refused_answerable": round(sum(c < t for c in conf_answerable) / max(len(conf_answerable), 1), 4),
            }
            for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
        ]
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
