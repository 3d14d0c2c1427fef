"""Answer quality on public Chinese QA sets: lexical vs dense vs hybrid, side by side.

    .venv/bin/python bench/quality.py                 # all three sets, zh-tech-corpus as distractors
    .venv/bin/python bench/quality.py --limit 300 --no-distractors

Runs `qa.evaluate.evaluate` (the same code path as `qa eval` and `/ask`) and writes
bench/results/quality.json plus a Markdown table on stdout.  Abstention is measured by
asking XQuAD questions against the CMRC index (their paragraphs are not indexed).
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
SETS = {
    "cmrc": DATA / "cmrc2018" / "cmrc2018_dev.json",
    "drcd": DATA / "drcd" / "DRCD_dev.json",
    "xquad": DATA / "xquad" / "xquad.zh.json",
}
KEYS = ["hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "answer_hit", "lead_sentence_hit", "answer_hit@80",
        "meta_first_sentence", "answer_chars_mean", "latency_ms_p50", "latency_ms_p95", "refused_answerable",
        "abstained_unanswerable"]


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    import sentence_transformers
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="cmrc,drcd,xquad")
    ap.add_argument("--methods", default="lexical,dense,hybrid")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-distractors", action="store_true")
    ap.add_argument("--answer-budgets", default="145", help="extra answer budgets (characters) to score")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quality.json")
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} not found: the public QA sets live in ../shared/data")

    from qa.config import Settings
    from qa.evaluate import evaluate

    settings = Settings()
    distractors = None if args.no_distractors else DATA / "zh-tech-corpus"
    methods = args.methods.split(",")
    results = {}
    t0 = time.time()
    for name in args.datasets.split(","):
        started = time.time()
        res = evaluate(
            SETS[name], settings, methods=methods, distractors=distractors,
            unanswerable=SETS["xquad"] if name == "cmrc" else None, limit=args.limit, progress=sys.stderr.isatty(),
            answer_budgets=tuple(int(b) for b in args.answer_budgets.split(",") if b),
        )
        res["seconds"] = round(time.time() - started, 1)
        results[name] = res
        print(f"{name}: done in {res['seconds']}s", file=sys.stderr)
    out = {
        "machine": machine(),
        "settings": {"limit": args.limit, "distractors": str(distractors) if distractors else None,
                     "methods": methods, **settings.model_dump(include={"model", "chunk_size", "answer_chars",
                                                                         "min_confidence", "fusion", "dense_weight",
                                                                         "candidates"})},
        "seconds": round(time.time() - t0, 1),
        "datasets": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, ensure_ascii=False, indent=2, default=str))
    print(table(out))


def table(out: dict) -> str:
    lines = []
    for name, res in out["datasets"].items():
        rows = res.get("methods") or {res["method"]: res}
        lines.append(f"\n**{name}** ({res['questions']} questions, {res['index']['passages']} passages)\n")
        lines.append("| metric | " + " | ".join(rows) + " |")
        lines.append("|---|" + "---:|" * len(rows))
        for k in KEYS:
            if any(k in r for r in rows.values()):
                lines.append(f"| {k} | " + " | ".join(str(r.get(k, "")) for r in rows.values()) + " |")
        first = next(iter(rows.values()))
        for i, b in enumerate(first.get("answer_budgets", [])):
            lines.append(f"| answer_hit @{b['budget']} chars (mean chars) | " + " | ".join(
                f"{r['answer_budgets'][i]['answer_hit']} ({r['answer_budgets'][i]['answer_chars_mean']})"
                for r in rows.values()) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
