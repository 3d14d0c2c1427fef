"""Score follow-up resolution on a multi-turn dev set (bench/data/dialogues.jsonl).

Every dialogue is asked twice through the answer path (retrieve + answer, as /ask does): once with
follow-up resolution (:mod:`qa.followup`) and once with every question searched as asked. The
index is only read: the earlier turns are kept in memory, exactly as the conversation store
would hand them back (question, what was searched, the resolved question, the title and heading
the answer came from), so a read-only index can be measured.

Reported per group of turns:

* ``followup`` turns (they depend on earlier turns): file hit@1 (the first citation is from the
  gold file), passage hit@1 (it also covers the gold line), answer-hit (the gold span is in the
  answer text), with resolution on and off;
* ``standalone`` turns after the first (a new subject, with or without "换个问题"): how often they
  were rewritten with earlier topics (they never should be) and the same hit rates;
* ``first`` turns: the same hit rates (no history: identical on and off by construction);
* ``standalone_in_context``: every first question asked again as the second turn of *another*
  dialogue: the rewrite rate on many more standalone questions;
* the cost of resolution itself (milliseconds per question).

A dialogue line: ``{"id", "turns": [{"q", "kind", "followup", "corpus", "file", "lines", "span"}]}``
(a comparison turn may add ``alt_files``: the other article compared answers it as well).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from qa.config import DEFAULT_TOP_K
from qa.evaluate import normalize_answer, percentile
from qa.followup import Resolution, Turn, resolve


def load_dialogues(path: Path) -> list[dict]:
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: not JSON ({exc})") from None
        if not isinstance(d, dict) or not isinstance(d.get("turns"), list) or not d["turns"]:
            raise ValueError(f"{path}:{n}: a dialogue is {{\"id\": ..., \"turns\": [{{\"q\": ...}}, ...]}}")
        for t in d["turns"]:
            if not isinstance(t, dict) or not str(t.get("q", "")).strip() or "file" not in t:
                raise ValueError(f"{path}:{n}: every turn needs 'q' and 'file'")
        out.append(d)
    return out


def is_dialogue_file(path: Path) -> bool:
    """True for a JSON-lines file whose first record has ``turns`` (what ``qa eval`` dispatches on)."""
    if Path(path).suffix != ".jsonl":
        return False
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    return "turns" in json.loads(line)
                except ValueError:
                    return False
    return False


def _same_file(cited: str, gold: str) -> bool:
    c, g = cited.replace("\\", "/"), gold.replace("\\", "/")
    return c == g or c.endswith("/" + g)


def _gold_file(t: dict, cited: str) -> bool:
    """The gold file, or for a comparison either of the two articles compared."""
    return any(_same_file(cited, g) for g in [t["file"], *t.get("alt_files", [])])


class _Scores:
    def __init__(self):
        self.n = 0
        self.file = 0
        self.passage = 0
        self.answer = 0
        self.rewritten = 0

    def add(self, t: dict, ans, res: Resolution) -> None:
        self.n += 1
        top = ans.citations[0] if ans.citations else None
        if top is not None and _gold_file(t, top.path):
            self.file += 1
            a, b = t.get("lines") or [0, 0]
            if _same_file(top.path, t["file"]) and top.line_start <= b and a <= top.line_end:
                self.passage += 1
        span = normalize_answer(t.get("span", ""))
        if span and not ans.abstained and span in normalize_answer(ans.answer):
            self.answer += 1
        self.rewritten += res.rewritten

    def dict(self) -> dict:
        r = lambda x: round(x / self.n, 4) if self.n else None  # noqa: E731
        return {"turns": self.n, "file_hit@1": r(self.file), "passage_hit@1": r(self.passage),
                "answer_hit": r(self.answer), "rewritten": r(self.rewritten)}


def _group(t: dict, i: int) -> str:
    if i == 0:
        return "first"
    return "followup" if t.get("followup") else "standalone"


def evaluate_dialogues(path: Path, assistant, top_k: int = DEFAULT_TOP_K, collection: str | None = None, progress=None) -> dict:
    """Ask every dialogue with resolution on and off; return the scores (see module docstring)."""
    dialogues = load_dialogues(path)
    scores = {mode: {g: _Scores() for g in ("first", "followup", "standalone", "standalone_in_context")} for mode in ("on", "off")}
    by_kind: dict[str, dict[str, _Scores]] = {}
    resolve_ms: list[float] = []
    misses: list[dict] = []
    latency: dict[str, list[float]] = {"on": [], "off": []}

    def ask(question: str, history: list[Turn], mode: str) -> tuple[Resolution, object]:
        t0 = time.perf_counter()
        res = resolve(question, history) if mode == "on" else Resolution(question, question.strip())
        t1 = time.perf_counter()
        if mode == "on":
            resolve_ms.append((t1 - t0) * 1000)
        hits, timings = assistant.retrieve(res.searched, top_k, "hybrid", collection)
        ans = assistant.answer(res.searched, hits, timings=timings)
        latency[mode].append((time.perf_counter() - t0) * 1000)
        return res, ans

    def remember(history: list[Turn], question: str, res: Resolution, ans) -> None:
        top = ans.citations[0] if ans.citations and not ans.abstained else None
        titles = [top.title, top.heading.split(" > ")[-1]] if top is not None else []
        history.append(Turn(question, res.searched if res.searched != question else None, titles,
                            not ans.abstained, res.resolved if res.resolved not in (None, question) else None))

    for mode in ("on", "off"):
        for d in dialogues:
            history: list[Turn] = []
            for i, t in enumerate(d["turns"]):
                res, ans = ask(t["q"], history, mode)
                group = _group(t, i)
                scores[mode][group].add(t, ans, res)
                by_kind.setdefault(t.get("kind", group), {"on": _Scores(), "off": _Scores()})[mode].add(t, ans, res)
                if mode == "on" and group != "first":
                    top = ans.citations[0] if ans.citations else None
                    ok = top is not None and _gold_file(t, top.path)
                    wrong_rewrite = group == "standalone" and res.rewritten
                    if not ok or wrong_rewrite:
                        misses.append({"dialogue": d["id"], "turn": i + 1, "q": t["q"], "kind": t.get("kind"),
                                       "searched": res.searched if res.searched != t["q"] else None,
                                       "reason": res.reason, "cited": top.path if top else None, "gold": t["file"]})
                remember(history, t["q"], res, ans)
            if progress:
                progress()
    # every first question, asked as the second turn of another dialogue
    for mode in ("on", "off"):
        for j, d in enumerate(dialogues):
            prev = dialogues[(j + 1) % len(dialogues)]["turns"][0]
            history: list[Turn] = []
            res, ans = ask(prev["q"], history, mode)
            remember(history, prev["q"], res, ans)
            t = d["turns"][0]
            res, ans = ask(t["q"], history, mode)
            scores[mode]["standalone_in_context"].add(t, ans, res)
            if mode == "on" and res.rewritten:
                misses.append({"dialogue": d["id"], "turn": "in context", "q": t["q"], "kind": "standalone_in_context",
                               "searched": res.searched, "reason": res.reason, "cited": None, "gold": t["file"]})
        if progress and mode == "on":
            progress()

    on, off = scores["on"], scores["off"]
    standalone_rewritten = on["standalone"].rewritten + on["standalone_in_context"].rewritten
    standalone_n = on["standalone"].n + on["standalone_in_context"].n
    return {
        "dataset": str(path),
        "dialogues": len(dialogues),
        "turns": sum(len(d["turns"]) for d in dialogues),
        "top_k": top_k,
        "with_resolution": {g: s.dict() for g, s in on.items()},
        "without_resolution": {g: s.dict() for g, s in off.items()},
        "standalone_rewritten_rate": round(standalone_rewritten / standalone_n, 4) if standalone_n else None,
        "by_kind": {k: {"turns": v["on"].n, "file_hit@1 on": v["on"].dict()["file_hit@1"],
                        "file_hit@1 off": v["off"].dict()["file_hit@1"]} for k, v in sorted(by_kind.items())},
        "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2),
                    "note": "timings from a shared development machine: noisy; hit rates are not"},
        "resolve_ms_p50": round(percentile(resolve_ms, 0.5), 3),
        "resolve_ms_p95": round(percentile(resolve_ms, 0.95), 3),
        "latency_ms_p50": {m: round(percentile(v, 0.5), 1) for m, v in latency.items()},
        "misses": misses,
    }


def standalone_rate(path: Path) -> dict:
    """How many questions of a single-turn SQuAD-format set would be read as follow-ups.

    Such questions were written to stand alone (against their paragraph), so each one that
    ``qa.followup.dependence`` flags would be rewritten if asked after an unrelated turn: a
    precision check on many more questions than the dialogues have. (Some genuinely refer to
    their paragraph: "该公司成立于哪一年？".)"""
    from collections import Counter

    from qa.evaluate import load_squad
    from qa.followup import dependence

    questions = [q.question for q in load_squad(Path(path)).questions]
    reasons = Counter(r for r in (dependence(q) for q in questions) if r)
    n = sum(reasons.values())
    return {"dataset": str(path), "questions": len(questions), "read_as_followup": n,
            "rate": round(n / len(questions), 4) if questions else None, "by_reason": dict(reasons.most_common())}


__all__ = ["evaluate_dialogues", "load_dialogues", "is_dialogue_file", "standalone_rate"]
