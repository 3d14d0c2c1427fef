"""Would sentence-level similarity with the embedding model pick better answers?  Measured, not kept.

    .venv/bin/python bench/sentence_similarity.py --index /work/idx/real     # -> bench/results/sentence-similarity.json

Issue 12 lists "sentence-level similarity with the same embedding model" among the ways to
score the sentences of an answer by meaning.  This script measures it on the real-question set
(bench/data/real-questions.jsonl over an index holding collections ``seed`` and ``zhtech``),
against the shipped answers in the same run, two ways:

* **composition**: every candidate unit of the cited passages (the units ``qa.answer`` chooses
  from) is embedded as a passage and its cosine with the question (min-max normalised over the
  candidates) multiplies its score by ``1 + w * sim``.  Lead-sentence hit, answer-hit and
  answer-hit@80 are scored as ``qa eval`` scores them.
* **re-ranking**: the 10 ranked passages are re-ordered by ``fused + w * maxsim`` where maxsim
  is the best unit cosine of the passage (normalised over the 10); passage and file hit@1.

It also reports what embedding the units costs per question on this machine: that is the
latency the feature would add to ``/ask`` unless the vectors were computed at ingest (which
costs about a second embedding pass over the corpus).  Results go to the JSON with machine and
settings; the table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("QA_BENCH_DATA") or ROOT.parent / "shared" / "data")
REAL = ROOT / "bench" / "data" / "real-questions.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True, help="index with collections seed and zhtech (read-only)")
    ap.add_argument("--weights", default="0.3,1,2", help="comma-separated weights w to try")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sentence-similarity.json")
    args = ap.parse_args()
    weights = [float(w) for w in args.weights.split(",")]

    import qa.answer as answer_mod
    from qa import cues, evalsets
    from qa.assistant import Assistant
    from qa.config import get_settings
    from qa.evaluate import _contains, file_hit, source_hit
    from qa.units import split_units

    settings = get_settings().model_copy(update={"index_dir": args.index})
    a = Assistant.open(args.index, settings=settings)
    rs = evalsets.load_real(REAL, None, settings.max_question_chars,
                            roots={"seed": ROOT / "corpus", "zhtech": DATA / "zh-tech-corpus"})
    questions = rs.of("answerable")
    sims: dict[tuple[str, str], float] = {}
    encode_ms: list[float] = []

    def sim(question: str, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if (question, t) not in sims]
        if missing:
            t0 = time.perf_counter()
            qv = a.embedder.encode_query(question)
            for t, v in zip(missing, a.embedder.encode_passages(missing)):
                sims[(question, t)] = float(np.dot(qv, v))
            encode_ms.append((time.perf_counter() - t0) * 1000)
        return np.array([sims[(question, t)] for t in texts])

    original = answer_mod._candidates
    weight = {"w": 0.0}

    def with_similarity(query, hits, max_passages, usable):
        cands = original(query, hits, max_passages, usable)
        if cands and weight["w"]:
            s = sim(query.text, [c.unit.text for c in cands])
            n = (s - s.min()) / ((s.max() - s.min()) or 1.0)
            for c, x in zip(cands, n):
                c.score *= 1 + weight["w"] * x
        return cands

    answer_mod._candidates = with_similarity
    retrieved = {}
    for q in questions:
        retrieved[q.qid] = a.retrieve(a.validate(q.question), top_k=10)[0]

    def composition(w: float) -> dict:
        weight["w"] = w
        lead = hit = short = 0
        for q in questions:
            hits = retrieved[q.qid]
            ans = a.answer(q.question, hits[:5])
            if ans.abstained:
                continue
            hit += _contains(q.answers, ans.answer)
            lead += _contains(q.answers, cues.first_sentence(ans.answer))
            short += _contains(q.answers, a.answer(q.question, hits[:5], answer_chars=80).answer)
        n = len(questions)
        return {"w": w, "lead_sentence_hit": round(lead / n, 4), "answer_hit": round(hit / n, 4),
                "answer_hit@80": round(short / n, 4)}

    def reranking(w: float) -> dict:
        h1 = f1 = 0
        for q in questions:
            hits = retrieved[q.qid]
            best = []
            for h in hits:
                units = [u.text for u in split_units(h.chunk.text, h.chunk.kind)] or [h.chunk.text]
                best.append(float(sim(q.question, units).max()))
            s = np.array(best)
            n = (s - s.min()) / ((s.max() - s.min()) or 1.0)
            first = max(range(len(hits)), key=lambda i: hits[i].fused + w * n[i])
            h1 += source_hit(q, hits[first].chunk)
            f1 += file_hit(q, hits[first].chunk)
        return {"w": w, "hit@1": round(h1 / len(questions), 4), "file_hit@1": round(f1 / len(questions), 4)}

    comp = [composition(0.0)] + [composition(w) for w in weights]
    rerank = [reranking(0.0)] + [reranking(w) for w in weights]
    answer_mod._candidates = original
    out = {
        "machine": {"cpu": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "load_avg": list(os.getloadavg())},
        "run_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "settings": {"model": a.reader.model, "index": str(args.index), "passages": a.reader.n_chunks,
                     "questions": len(questions), "cited_passages": 5, "reranked_passages": 10},
        "composition": comp,
        "reranking": rerank,
        "unit_encoding_ms_per_question": {"p50": round(statistics.median(encode_ms), 1) if encode_ms else None,
                                          "mean": round(statistics.mean(encode_ms), 1) if encode_ms else None},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"\nreal set, {len(questions)} answerable questions; w = 0 is the shipped answer (same run)\n")
    print("| w | lead-sentence hit | answer-hit | answer-hit@80 | passage hit@1 (re-ranked) | file hit@1 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for c, r in zip(comp, rerank):
        print(f"| {c['w']} | {c['lead_sentence_hit']} | {c['answer_hit']} | {c['answer_hit@80']} | {r['hit@1']} | {r['file_hit@1']} |")
    print(f"\nembedding the units costs {out['unit_encoding_ms_per_question']['p50']} ms per question (p50; "
          f"the whole /ask p50 is about 20 ms)")


if __name__ == "__main__":
    main()
