"""Question sets for ``qa eval``: SQuAD JSON and our real-question JSONL, read defensively.

A public set with a few broken records (empty questions, answers that are not in their
paragraph, duplicate ids, a malformed line) must not cost a whole run: every record that
cannot be used is skipped and reported with its reason, and the rest is evaluated.

Real-question format (one JSON object per line, see bench/data/README.md)::

    {"id": "k8s-009", "kind": "answerable", "type": "flag", "question": "restartPolicy 默认值是什么？",
     "corpus": "zhtech", "file": "kubernetes-docs-zh/.../pod-lifecycle.md", "lines": [77, 77],
     "gold": "可能的值为 Always、OnFailure 和 Never。默认为 Always"}
    {"id": "stub-001", "kind": "stub", ..., "corpus": "seed", "file": "...", "lines": [91, 93], "gold": null}
    {"id": "none-001", "kind": "unanswerable", "type": "definition", "question": "Podman 的 conmon 进程是干什么的？"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("answerable", "unanswerable", "stub")


class DatasetError(ValueError):
    """The file as a whole cannot be read as a question set."""


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
    skipped: list[dict] = field(default_factory=list)


@dataclass
class RealQuestion:
    qid: str
    question: str
    kind: str  # answerable | unanswerable | stub
    type: str
    corpus: str | None = None
    file: str | None = None
    lines: tuple[int, int] | None = None
    gold: str | None = None

    @property
    def answers(self) -> list[str]:
        return [self.gold] if self.gold else []


@dataclass
class RealSet:
    questions: list[RealQuestion] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def of(self, kind: str) -> list[RealQuestion]:
        return [q for q in self.questions if q.kind == kind]


def _skip(skipped: list[dict], where: str, reason: str, qid: str | None = None) -> None:
    skipped.append({"id": qid, "where": where, "reason": reason})


def _question_problem(question, max_chars: int) -> str | None:
    if not isinstance(question, str):
        return "question is not a string"
    q = question.strip()
    if not q:
        return "empty question"
    if len(q) > max_chars:
        return f"question longer than {max_chars} characters"
    return None


def detect_format(path: Path) -> str:
    """'squad' for a SQuAD JSON document (an object with "data"), else 'real' (JSONL)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return "real"
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text: {exc}") from None
    if isinstance(doc, dict) and "data" in doc:
        return "squad"
    if isinstance(doc, dict) and ("question" in doc or "kind" in doc):
        return "real"  # a one-line JSONL file
    raise DatasetError(f"{path}: neither SQuAD JSON (an object with 'data') nor question JSONL")


def load_squad(path: Path, limit: int | None = None, prefix: str = "p", max_chars: int = 500,
               need_answers: bool = True) -> Dataset:
    """Paragraphs become articles; questions without a usable answer in their paragraph,
    empty or over-long questions and repeated ids are skipped (``Dataset.skipped``).
    ``need_answers=False`` for a set asked only to see it abstain: any question will do."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid SQuAD JSON: {exc}") from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise DatasetError(f"{path}: SQuAD JSON needs a top-level 'data' list")
    ds = Dataset()
    seen: set[str] = set()
    n = 0
    for ai, article in enumerate(data):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs", []), list):
            _skip(ds.skipped, f"data[{ai}]", "malformed article")
            continue
        title = str(article.get("title") or "")
        for pi, para in enumerate(article.get("paragraphs", [])):
            where = f"data[{ai}].paragraphs[{pi}]"
            context = para.get("context") if isinstance(para, dict) else None
            if not isinstance(context, str) or not context.strip():
                _skip(ds.skipped, where, "paragraph has no context")
                continue
            qas = para.get("qas", [])
            if not isinstance(qas, list):
                _skip(ds.skipped, where, "malformed qas")
                continue
            name = f"{prefix}{n:05d}.md"
            n += 1
            for qi, qa in enumerate(qas):
                qwhere = f"{where}.qas[{qi}]"
                if not isinstance(qa, dict):
                    _skip(ds.skipped, qwhere, "malformed record")
                    continue
                qid = str(qa.get("id", f"{name}#{qi}"))
                problem = _question_problem(qa.get("question"), max_chars)
                if problem:
                    _skip(ds.skipped, qwhere, problem, qid)
                    continue
                if qid in seen:
                    _skip(ds.skipped, qwhere, "duplicate id", qid)
                    continue
                raw = qa.get("answers", [])
                texts = [a.get("text") for a in raw if isinstance(a, dict)] if isinstance(raw, list) else []
                texts = [t for t in texts if isinstance(t, str) and t.strip()]
                answers = [t for t in texts if t in context]
                if need_answers and not texts:
                    _skip(ds.skipped, qwhere, "no answer", qid)
                    continue
                if need_answers and not answers:
                    _skip(ds.skipped, qwhere, "answer not in its context", qid)
                    continue
                seen.add(qid)
                ds.questions.append(Question(qid, qa["question"], answers, name))
            ds.docs[name] = (title or name, context)
    if limit:
        ds.questions = ds.questions[:limit]
    return ds


def load_real(path: Path, limit: int | None = None, max_chars: int = 500, roots: dict[str, Path] | None = None) -> RealSet:
    """Read real-question JSONL.  With ``roots`` (corpus name -> folder), each gold span is
    also checked to occur in its file within its line range."""
    rs = RealSet()
    seen: set[str] = set()
    counts = {k: 0 for k in KINDS}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text: {exc}") from None
    for ln, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"line {ln}"
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as exc:
            _skip(rs.skipped, where, f"malformed JSON: {exc.msg}")
            continue
        if not isinstance(rec, dict):
            _skip(rs.skipped, where, "not a JSON object")
            continue
        qid = str(rec.get("id") or f"line-{ln}")
        kind = rec.get("kind", "answerable")
        if kind not in KINDS:
            _skip(rs.skipped, where, f"unknown kind {kind!r}", qid)
            continue
        problem = _question_problem(rec.get("question"), max_chars)
        if problem:
            _skip(rs.skipped, where, problem, qid)
            continue
        if qid in seen:
            _skip(rs.skipped, where, "duplicate id", qid)
            continue
        q = RealQuestion(qid, rec["question"], kind, str(rec.get("type") or "other"))
        if kind != "unanswerable":
            problem = _source_problem(rec, kind, roots)
            if problem:
                _skip(rs.skipped, where, problem, qid)
                continue
            q.corpus, q.file = rec["corpus"], rec["file"]
            q.lines = (int(rec["lines"][0]), int(rec["lines"][1]))
            q.gold = rec.get("gold")
        seen.add(qid)
        if limit and counts[kind] >= limit:
            continue
        counts[kind] += 1
        rs.questions.append(q)
    return rs


def _source_problem(rec: dict, kind: str, roots: dict[str, Path] | None) -> str | None:
    corpus, file, lines, gold = rec.get("corpus"), rec.get("file"), rec.get("lines"), rec.get("gold")
    if not isinstance(corpus, str) or not corpus or not isinstance(file, str) or not file:
        return "missing corpus or file"
    if (not isinstance(lines, list) or len(lines) != 2 or not all(isinstance(x, int) for x in lines)
            or not 1 <= lines[0] <= lines[1]):
        return "lines must be [first, last], 1-based"
    if kind == "answerable" and (not isinstance(gold, str) or not gold.strip()):
        return "answerable question without a gold span"
    if roots is None:
        return None
    if corpus not in roots:
        return None  # not checkable here; qa.evaluate refuses to run without every corpus
    src = roots[corpus] / file
    try:
        text = src.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return f"source file not readable: {file}"
    if kind == "answerable" and gold not in "\n".join(text.splitlines()[lines[0] - 1: lines[1]]):
        return "gold span not in its file's line range"
    return None
