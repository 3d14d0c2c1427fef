"""Write bench/data/real-questions.jsonl from the hand-written question lists beside it.

    python bench/data/build_real_questions.py [--zhtech ../shared/data/zh-tech-corpus]

The lists (q_*.py) hold the question, its type and a gold span copied verbatim from the
source; this script finds the span in its file and records the 1-based line range, so the
range is never typed by hand.  It refuses a span that is missing or crosses a line break.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))


def locate(text: str, gold: str) -> tuple[int, int]:
    i = text.find(gold)
    if i < 0:
        raise ValueError(f"gold span not found: {gold!r}")
    if "\n" in gold:
        raise ValueError(f"gold span crosses a line break: {gold!r}")
    line = text.count("\n", 0, i) + 1
    return line, line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zhtech", type=Path, default=ROOT.parent / "shared" / "data" / "zh-tech-corpus")
    ap.add_argument("--seed", type=Path, default=ROOT / "corpus")
    ap.add_argument("--out", type=Path, default=HERE / "real-questions.jsonl")
    args = ap.parse_args()
    import q_cncf, q_helm, q_k8s, q_kubeovn, q_seed, q_stub, q_tidb, q_unanswerable  # noqa: E401

    roots = {"zhtech": args.zhtech, "seed": args.seed}
    rows = []
    groups = [("seed", "seed", q_seed.ROWS), ("zhtech", "cncf", q_cncf.ROWS), ("zhtech", "k8s", q_k8s.ROWS),
              ("zhtech", "helm", q_helm.ROWS), ("zhtech", "kubeovn", q_kubeovn.ROWS), ("zhtech", "tidb", q_tidb.ROWS)]
    for corpus, tag, items in groups:
        for n, (file, qtype, question, gold) in enumerate(items, 1):
            text = (roots[corpus] / file).read_text(encoding="utf-8")
            a, b = locate(text, gold)
            rows.append({"id": f"{tag}-{n:03d}", "kind": "answerable", "type": qtype, "question": question,
                         "corpus": corpus, "file": file, "lines": [a, b], "gold": gold})
    for n, (file, (a, b), qtype, question) in enumerate(q_stub.ROWS, 1):
        rows.append({"id": f"stub-{n:03d}", "kind": "stub", "type": qtype, "question": question,
                     "corpus": "seed", "file": file, "lines": [a, b], "gold": None})
    for n, (qtype, question, absent) in enumerate(q_unanswerable.ROWS, 1):
        rows.append({"id": f"none-{n:03d}", "kind": "unanswerable", "type": qtype, "question": question,
                     "absent": absent})
    with args.out.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("answerable", "unanswerable", "stub")}
    print(f"{args.out}: {len(rows)} rows {kinds}")


if __name__ == "__main__":
    main()
