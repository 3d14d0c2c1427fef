"""Approximate search on *real* e5 vectors: is HNSW's recall@10 >= 0.98 where qa/vectors/faiss_build.py switches to it?

    .venv/bin/python bench/ann_real.py                  # real vectors + 200k e5-like synthetic
    .venv/bin/python bench/ann_real.py --synthetic 0    # real vectors only (a minute)

bench/scale.py uses uniform random unit vectors, the worst case for any graph or
cluster index: in 384 dimensions every point is nearly equidistant from every other.
Real embeddings live on a much lower-dimensional, clustered manifold.  This bench
measures recall on

* **real**: every passage vector in the embedding cache (the passages of whatever
  was ingested on this machine: the zh-tech corpus, CMRC/DRCD/XQuAD paragraphs...),
  queried with real questions embedded with the query prompt;
* **e5-like**: ``--synthetic`` vectors drawn from a Gaussian with the mean and
  covariance of the real vectors (same spectrum, so the same intrinsic
  dimensionality), normalised, at the size where qa/vectors/faiss_build.py switches to HNSW;
  queried with the same real questions.

recall@10 is measured against the exact flat index over the same vectors.
Writes bench/results/ann_real.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def cached_vectors(cache_dir: Path) -> np.ndarray:
    path = cache_dir / "embeddings.sqlite"
    if not path.exists():
        sys.exit(f"{path} not found: ingest something first (e.g. qa ingest ../shared/data/zh-tech-corpus)")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    blobs = [b for (b,) in conn.execute("SELECT vec FROM vectors")]
    vecs = np.frombuffer(b"".join(b for b in blobs if len(b) == len(blobs[0])), dtype=np.float32)
    vecs = vecs.reshape(-1, len(blobs[0]) // 4)
    return np.unique(vecs, axis=0)


def questions(n: int) -> list[str]:
    out: list[str] = []
    for name in ("cmrc2018/cmrc2018_dev.json", "drcd/DRCD_dev.json", "xquad/xquad.zh.json"):
        path = DATA / name
        if not path.exists():
            continue
        for art in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for para in art["paragraphs"]:
                out.extend(q["question"] for q in para["qas"][:1])
    rng = np.random.default_rng(0)
    rng.shuffle(out)
    return out[:n]


def e5_like(real: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Gaussian with the real vectors' mean and covariance, then L2-normalised."""
    rng = np.random.default_rng(seed)
    mean = real.mean(0)
    cov = np.cov(real - mean, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    basis = (vecs * np.sqrt(np.clip(vals, 0, None))).T.astype(np.float32)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for i in range(0, n, 100_000):
        z = rng.standard_normal((min(100_000, n - i), real.shape[1])).astype(np.float32)
        block = mean + z @ basis
        out[i : i + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def measure(name: str, base: np.ndarray, queries: np.ndarray, k: int, m: int, efc: int, efs: list[int]) -> list[dict]:
    import faiss

    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    t = time.perf_counter()
    _, truth = flat.search(queries, k)
    flat_ms = (time.perf_counter() - t) * 1000 / len(queries)
    rows = [{"data": name, "n": len(base), "index": "Flat (exact)", "recall@10": 1.0,
             "ms_per_query": round(flat_ms, 3), "bytes_per_passage": base.shape[1] * 4}]
    hnsw = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = efc
    t = time.perf_counter()
    hnsw.add(base)
    build = time.perf_counter() - t
    for ef in efs:
        hnsw.hnsw.efSearch = ef
        t = time.perf_counter()
        _, found = hnsw.search(queries, k)
        ms = (time.perf_counter() - t) * 1000 / len(queries)
        rec = float(np.mean([len(set(f) & set(g)) / k for f, g in zip(found, truth)]))
        rows.append({"data": name, "n": len(base), "index": f"HNSW{m} (efC {efc}), efSearch {ef}",
                     "recall@10": round(rec, 4), "ms_per_query": round(ms, 3), "build_s": round(build, 1),
                     "bytes_per_passage": round(faiss.serialize_index(hnsw).size / len(base))})
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic", type=int, default=200_000, help="e5-like vectors to draw (0: skip)")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--m", type=int, default=None, help="HNSW M (default: qa/vectors/faiss_build.py's)")
    ap.add_argument("--ef-construction", type=int, default=None)
    ap.add_argument("--ef-search", default="32,64,128,256")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ann_real.json")
    args = ap.parse_args()

    import faiss

    from qa.vectors import faiss_build as ann
    from qa.config import Settings
    from qa.embeddings import get_embedder

    faiss.omp_set_num_threads(args.threads)
    m = args.m or ann.HNSW_M
    efc = args.ef_construction or ann.HNSW_EF_CONSTRUCTION
    efs = [int(x) for x in args.ef_search.split(",")]
    settings = Settings()
    real = cached_vectors(settings.cache_dir)
    qs = questions(args.queries)
    if not qs:
        sys.exit(f"no questions: {DATA} not found")
    emb = get_embedder(settings.model, settings)
    queries = np.ascontiguousarray(emb.encode_queries(qs), dtype=np.float32)
    print(f"{len(real)} real vectors, {len(queries)} real questions", file=sys.stderr)

    rows = measure("real e5 passages", real, queries, 10, m, efc, efs)
    if args.synthetic:
        rows += measure("e5-like (real mean/cov)", e5_like(real, args.synthetic, 0), queries, 10, m, efc, efs)

    out = {
        "benchmark": "bench/ann_real.py",
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "faiss": faiss.__version__, "threads": args.threads},
        "settings": {"queries": len(queries), "k": 10, "hnsw_m": m, "ef_construction": efc,
                     "ef_search": efs, "approx_threshold": ann.APPROX_THRESHOLD,
                     "ef_search_served": ann.HNSW_EF_SEARCH, "model": settings.model},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print("| data | n | index | recall@10 | ms/query | build s | bytes/passage |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['data']} | {r['n']:,} | {r['index']} | {r['recall@10']} | {r['ms_per_query']} | "
              f"{r.get('build_s', '')} | {r['bytes_per_passage']} |")


if __name__ == "__main__":
    main()
