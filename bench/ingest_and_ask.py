"""End-to-end numbers on a real corpus: ingest the zh-tech-corpus, then time /ask over HTTP.

    .venv/bin/python bench/ingest_and_ask.py            # writes bench/results/ingest_and_ask.json

Reports files/s and passages/s of the whole ingest (parse, chunk, lexical index, embed — vectors
already in the embedding cache are reused, as in real use), the embedding rate on 256 passages with
the cache off, index size and bytes per passage, and p50/p95 latency of 200 real Chinese questions
sent to a real uvicorn server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "data" / "zh-tech-corpus"


def questions_from(index_dir: Path, n: int, seed: int = 7) -> list[str]:
    """Real questions a reader would type, derived from the corpus' own headings."""
    from qa.store import IndexReader

    r = IndexReader(index_dir)
    heads = [row[0].split(" > ")[-1] for row in r.conn.execute("SELECT DISTINCT heading FROM chunks WHERE heading != ''")]
    heads = [h for h in heads if 2 <= len(h) <= 30]
    rng = random.Random(seed)
    rng.shuffle(heads)
    forms = ["{}是什么？", "如何{}？", "{}有哪些注意事项？", "请介绍一下{}", "{}"]
    return [forms[i % len(forms)].format(h) for i, h in enumerate(heads[:n])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest_and_ask.json")
    args = ap.parse_args()
    if not args.corpus.exists():
        sys.exit(f"{args.corpus} not found")

    import httpx
    import torch

    from qa.config import Settings
    from qa.embeddings import get_embedder
    from qa.ingest import ingest
    from tests.conftest import start_server, stop_server

    tmp = Path(tempfile.mkdtemp(prefix="qa-bench-"))
    index_dir = tmp / "index"
    settings = Settings(index_dir=index_dir)
    try:
        t = time.perf_counter()
        report = ingest(args.corpus, settings, progress=sys.stderr.isatty())
        wall = time.perf_counter() - t
        size = sum(f.stat().st_size for f in (index_dir / report.generation).iterdir())

        emb = get_embedder(settings.model, settings)
        from qa.store import IndexReader

        sample = [r[0] for r in IndexReader(index_dir).conn.execute("SELECT text FROM chunks LIMIT 256")]
        emb.encode_passages(sample[:8])
        t = time.perf_counter()
        emb.encode_passages(sample)
        embed_rate = len(sample) / (time.perf_counter() - t)

        qs = questions_from(index_dir, args.questions)
        srv = start_server(index_dir, ready_path="/readyz")
        lat = []
        abstained = 0
        try:
            with httpx.Client(timeout=30) as client:
                client.post(srv.url + "/ask", json={"question": "预热"})
                for q in qs:
                    t = time.perf_counter()
                    r = client.post(srv.url + "/ask", json={"question": q})
                    lat.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    abstained += r.json()["abstained"]
        finally:
            stop_server(srv)
        lat.sort()
        out = {
            "machine": {
                "cpu": next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                             if ln.startswith("model name")), platform.processor()),
                "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            },
            "settings": settings.model_dump(include={"model", "chunk_size", "precision", "batch_size", "top_k"}),
            "corpus": str(args.corpus),
            "ingest": {
                "files": report.files_seen, "skipped": len(report.skipped), "passages": report.chunks_total,
                "embedded": report.chunks_embedded, "from_cache": report.chunks_cached,
                "seconds": round(wall, 2), "files_per_s": round(report.files_seen / wall, 1),
                "passages_per_s": round(report.chunks_total / wall, 1),
                "index_bytes": size, "bytes_per_passage": round(size / max(report.chunks_total, 1)),
            },
            "embedding_passages_per_s_uncached": round(embed_rate, 1),
            "ask_http": {
                "questions": len(qs), "abstained": abstained,
                "p50_ms": round(statistics.median(lat), 1), "p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 1),
                "mean_ms": round(statistics.mean(lat), 1),
            },
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, ensure_ascii=False, indent=2))
        i, a = out["ingest"], out["ask_http"]
        print("| metric | value |\n|---|---:|")
        for k, v in [("files", i["files"]), ("passages", i["passages"]), ("ingest seconds", i["seconds"]),
                     ("files/s", i["files_per_s"]), ("passages/s (with cache)", i["passages_per_s"]),
                     ("embedding passages/s (no cache)", out["embedding_passages_per_s_uncached"]),
                     ("index bytes", i["index_bytes"]), ("bytes/passage", i["bytes_per_passage"]),
                     ("/ask p50 ms", a["p50_ms"]), ("/ask p95 ms", a["p95_ms"])]:
            print(f"| {k} | {v} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
