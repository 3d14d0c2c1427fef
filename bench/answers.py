"""Answer quality as a reader sees it: the real-question set and CMRC 2018 dev, before/after.

    .venv/bin/python bench/answers.py                                   # both sets -> bench/results/answers.json
    .venv/bin/python bench/answers.py --compare bench/results/answers-baseline.json
    .venv/bin/python bench/answers.py --sets real --real-index /work/idx/real
    .venv/bin/python bench/answers.py --out bench/results/answers-baseline.json   # (how the baseline was made)

Both go through `qa.evaluate.evaluate`, the code path of `qa eval` and `/ask`:

* **real**: bench/data/real-questions.jsonl over `corpus/` (collection `seed`) and
  ../shared/data/zh-tech-corpus (collection `zhtech`).  With `--real-index DIR` an existing
  index holding those two collections is asked read-only; otherwise one is built (and kept)
  in `--real-keep` so later runs only ingest what changed.
* **cmrc**: CMRC 2018 dev with the zh-tech corpus as distractors and XQuAD zh as
  unanswerable questions, index kept in `--cmrc-keep` (built once; later runs re-ingest
  nothing).  `--cmrc-limit N` asks only the first N questions (the index is the same).

Writes the metrics (per set), per-question rows of the real set beside them
(`<out>-real.jsonl`), and prints a Markdown table; with `--compare OLD.json` the table has
the old value, the new value and the change for every metric.  Timings are from a shared
2-core machine: compare only within one run or with the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
REAL = ROOT / "bench" / "data" / "real-questions.jsonl"
CMRC = DATA / "cmrc2018" / "cmrc2018_dev.json"
XQUAD = DATA / "xquad" / "xquad.zh.json"
ZHTECH = DATA / "zh-tech-corpus"

REAL_KEYS = ["file_hit@1", "hit@1", "hit@5", "mrr@10", "answer_hit", "lead_sentence_hit", "answer_hit@80",
             "meta_first_sentence", "answer_chars_mean", "refused_answerable", "abstained_unanswerable",
             "stub_status", "stub_section_cited", "answers_given", "answers_with_diagram_source",
             "answers_with_lone_fence", "answers_with_dangling_colon", "latency_ms_p50"]
CMRC_KEYS = ["hit@1", "mrr@10", "answer_hit", "lead_sentence_hit", "answer_hit@80", "meta_first_sentence",
             "answer_chars_mean", "refused_answerable", "abstained_unanswerable", "answers_with_diagram_source",
             "answers_with_lone_fence", "answers_with_dangling_colon", "latency_ms_p50"]
KEYS = {"real": REAL_KEYS, "cmrc": CMRC_KEYS}


def run_real(args, settings) -> dict:
    from qa.evaluate import evaluate

    corpora = {"seed": ROOT / "corpus", "zhtech": ZHTECH}
    if args.real_index:
        return evaluate(REAL, settings, corpora=corpora, index=args.real_index, progress=sys.stderr.isatty())
    return evaluate(REAL, settings, corpora=corpora, keep_index=args.real_keep, progress=sys.stderr.isatty())


def run_cmrc(args, settings) -> dict:
    from qa.evaluate import evaluate

    return evaluate(CMRC, settings, distractors=ZHTECH, unanswerable=XQUAD, limit=args.cmrc_limit,
                    keep_index=args.cmrc_keep, progress=sys.stderr.isatty())


def table(new: dict, old: dict | None = None) -> str:
    lines = []
    for name, res in new["sets"].items():
        before = (old or {}).get("sets", {}).get(name)
        head = f"\n**{name}**: {res['questions']} answerable questions"
        if name == "real":
            head += f", {res['unanswerable_questions']} unanswerable, {res['stub_questions']} stub"
        lines.append(head + f" ({res['index'].get('passages')} passages)\n")
        if before:
            lines += ["| metric | before | after | change |", "|---|---:|---:|---:|"]
        else:
            lines += ["| metric | value |", "|---|---:|"]
        for k in KEYS[name]:
            if k not in res:
                continue
            if before:
                b = before.get(k)
                delta = "" if not isinstance(b, (int, float)) else f"{res[k] - b:+.4g}"
                lines.append(f"| {k} | {b if b is not None else ''} | {res[k]} | {delta} |")
            else:
                lines.append(f"| {k} | {res[k]} |")
        if res.get("skipped_count"):
            lines.append(f"\nskipped: {res['skipped_by_reason']}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="real,cmrc", help="comma-separated: real, cmrc")
    ap.add_argument("--real-index", type=Path, default=None, help="existing index with collections seed and zhtech (read-only)")
    ap.add_argument("--real-keep", type=Path, default=Path("/work/idx/eval-real/index"), help="where to build/keep the real-set index")
    ap.add_argument("--cmrc-keep", type=Path, default=Path("/work/idx/eval-cmrc/index"), help="where to build/keep the CMRC+distractors index")
    ap.add_argument("--cmrc-limit", type=int, default=None, help="only the first N CMRC questions (and N XQuAD)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "answers.json")
    ap.add_argument("--compare", type=Path, default=None, help="an earlier answers.json to compare with")
    args = ap.parse_args()
    for need in (REAL, ZHTECH):
        if not need.exists():
            sys.exit(f"{need} not found")

    from qa.config import Settings

    settings = Settings()
    sets = {}
    t0 = time.time()
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        started = time.time()
        res = run_real(args, settings) if name == "real" else run_cmrc(args, settings)
        res["seconds"] = round(time.time() - started, 1)
        sets[name] = res
        print(f"{name}: done in {res['seconds']}s", file=sys.stderr)
    per_question = sets.get("real", {}).pop("per_question", None)
    out = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "shared": True,
                    "load_avg": [round(x, 2) for x in os.getloadavg()],
                    "note": "shared 2-core machine: latency is noisy; answer metrics are not"},
        "run_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "commit": os.popen(f"git -C {ROOT} rev-parse --short HEAD 2>/dev/null").read().strip(),
        "settings": settings.model_dump(include={"model", "backend", "chunk_size", "answer_chars", "min_confidence",
                                                 "fusion", "dense_weight", "candidates"}),
        "commands": {
            "real": "qa eval bench/data/real-questions.jsonl --corpus seed=corpus --corpus zhtech=../shared/data/zh-tech-corpus "
                    + (f"--index {args.real_index}" if args.real_index else f"--keep-index {args.real_keep}") + " --json",
            "cmrc": "qa eval ../shared/data/cmrc2018/cmrc2018_dev.json --distractors ../shared/data/zh-tech-corpus "
                    f"--unanswerable ../shared/data/xquad/xquad.zh.json --keep-index {args.cmrc_keep}"
                    + (f" --limit {args.cmrc_limit}" if args.cmrc_limit else "") + " --json",
        },
        "seconds": round(time.time() - t0, 1),
        "sets": sets,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, ensure_ascii=False, indent=2, default=str))
    if per_question is not None:
        rows_path = args.out.with_name(args.out.stem + "-real.jsonl")
        rows_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in per_question), encoding="utf-8")
    old = json.loads(args.compare.read_text(encoding="utf-8")) if args.compare else None
    print(table(out, old))


if __name__ == "__main__":
    main()
