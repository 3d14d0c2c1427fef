"""FAISS vs Milvus (milvus-lite's gRPC server on 127.0.0.1), measured in one run.

    .venv/bin/python bench/milvus.py --limit 300           # ~5 min once the eval index exists

1. builds (or reuses, ``--index``) the ``qa eval`` index: CMRC 2018 dev paragraphs plus the
   zh-tech corpus as distractors, and publishes it to a fresh milvus-lite server (its own
   process, spoken to over gRPC as Milvus Standalone would be): seconds and bytes per passage;
2. re-ingests the unchanged 593-file zh-tech corpus with ``QA_VECTOR_STORE=milvus`` (hash
   every file, ask Milvus whether it serves this generation, write nothing) and, as the
   baseline, with FAISS;
3. ranks the first ``--limit`` CMRC questions through ``Assistant.retrieve`` on both stores
   (same client-side fusion and window re-scoring) and through Milvus's own ``hybrid_search``
   with WeightedRanker and RRFRanker: hit@1, hit@5, MRR@10 (``qa eval``'s definitions);
4. serves each store with the production server and drives ``--clients`` concurrent clients
   for ``--duration`` seconds (bench/load.py's driver): /ask p50, p95 and QPS, as ratios.

The machine is shared (other developers' jobs run beside it): read the ratios, not the absolute
numbers.  Writes bench/results/milvus.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "milvus.json"


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def dataset(args):
    """The first ``--limit`` questions; with ``--paragraphs N`` only N paragraphs are indexed: those
    of the questions, then the following ones of the set (as more distractors)."""
    from qa.evaluate import Dataset, load_squad

    full = load_squad(Path(args.dataset))
    qs = full.questions[: args.limit]
    if not args.paragraphs:
        return Dataset(full.docs, qs)
    keep = list(dict.fromkeys(q.doc for q in qs))
    for name in full.docs:
        if len(keep) >= max(args.paragraphs, len(set(keep))):
            break
        if name not in keep:
            keep.append(name)
    return Dataset({n: full.docs[n] for n in keep}, qs)


def build_index(args, settings) -> dict:
    from qa.evaluate import build_eval_index

    ds = dataset(args)
    t = time.perf_counter()
    distractors = Path(args.distractors) if args.distractors not in ("", "none") else None
    build = build_eval_index(ds, settings, Path(args.index), distractors, progress=sys.stderr.isatty())
    return {**build, "seconds": round(time.perf_counter() - t, 1)}


def quality(args, faiss_bot, milvus_bot) -> dict:
    from qa.evaluate import passage_hit, ranking_metrics, run_method

    qs = dataset(args).questions
    out = {"questions": len(qs)}
    for name, bot in (("faiss", faiss_bot), ("milvus", milvus_bot)):
        r = run_method(bot, qs, [], "hybrid", False)
        out[name] = {k: r[k] for k in ("hit@1", "hit@5", "mrr@10", "latency_ms_p50", "latency_ms_p95")}
    reader = milvus_bot.reader
    from qa import lexical

    for ranker in ("weighted", "rrf"):
        rel, lat = [], []
        for q in qs:
            t = time.perf_counter()
            vec = milvus_bot.embedder.encode_query(q.question)
            ids = [i for i, _ in reader.hybrid(vec, lexical.query_tokens(q.question), 10, ranker=ranker,
                                                dense_weight=milvus_bot.settings.dense_weight,
                                                candidates=milvus_bot.settings.candidates)]
            rows = reader.chunks(ids)
            lat.append((time.perf_counter() - t) * 1000)
            rel.append([passage_hit(q, rows[i].doc_path, rows[i].text) for i in ids if i in rows])
        m = ranking_metrics(rel)
        lat.sort()
        out[f"milvus_hybrid_search_{ranker}"] = {
            "hit@1": round(m["hit@1"], 4), "hit@5": round(m["hit@5"], 4), "mrr@10": round(m["mrr@10"], 4),
            "latency_ms_p50": round(lat[len(lat) // 2], 1),
        }
    out["delta_points_milvus_vs_faiss"] = {
        k: round(100 * (out["milvus"][k] - out["faiss"][k]), 2) for k in ("hit@1", "mrr@10")
    }
    return out


def unchanged_reingest(args, settings) -> dict:
    from qa.ingest import ingest

    out = {}
    for name, s in (("faiss", settings.model_copy(update={"vector_store": "faiss"})), ("milvus", settings)):
        t = time.perf_counter()
        r = ingest(Path(args.distractors), s, collection="distractors")
        out[name] = {"seconds": round(time.perf_counter() - t, 3), "files": r.files_seen, "unchanged": r.unchanged,
                     "published": r.published, "vector_store": r.vector_store}
    return out


def unchanged_593(args, settings, tmp: Path) -> dict:
    """Re-ingest of an unchanged 593-file corpus into Milvus, as bench/ingest.py measures it for FAISS:
    593 files of the zh-tech corpus' mean size (one real article body each, so the first ingest
    embeds a handful of distinct passages), published once, then re-ingested three times."""
    import numpy as np

    from qa.documents import Document, iter_corpus
    from qa.ingest import ingest

    corpus = Path(SHARED / "zh-tech-corpus")
    sizes = [p.stat().st_size for p in corpus.rglob("*.md")]
    body = next(d for d in iter_corpus(corpus) if isinstance(d, Document) and len(d.body) > 6000).body
    body = body[: int(np.mean(sizes))]
    root = tmp / "corpus-593"
    for i in range(593):
        p = root / f"d{i // 50:02d}" / f"article-{i:03d}.md"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"---\ntitle: 同一篇\n---\n\n{body}\n", encoding="utf-8")
    s = settings.model_copy(update={"index_dir": tmp / "index-593", "milvus_collection": "bench_593"})
    t = time.perf_counter()
    first = ingest(root, s)
    first_s = time.perf_counter() - t
    runs = {"milvus": [], "faiss": []}
    for _ in range(3):
        for name, st in (("faiss", s.model_copy(update={"vector_store": "faiss"})), ("milvus", s)):
            t = time.perf_counter()
            again = ingest(root, st)
            runs[name].append(round(time.perf_counter() - t, 3))
            assert not again.published and again.unchanged == 593
            if name == "milvus":
                assert again.vector_store["published"] is False
    return {"files": 593, "bytes": sum(p.stat().st_size for p in root.rglob("*.md")),
            "passages": first.chunks_total, "first_ingest_and_publish_s": round(first_s, 2),
            "milvus_publish_s": first.vector_store["seconds"], "unchanged_s": runs,
            "unchanged_best_s": {k: min(v) for k, v in runs.items()}, "target_s": 3,
            "meets_target": min(runs["milvus"]) <= 3}


def serve_and_drive(args, env_extra: dict, qfile: Path, tag: str, tmp: Path) -> dict:
    import httpx

    from tests.conftest import free_port

    port = free_port()
    env = {**os.environ, "QA_INDEX_DIR": str(args.index), "QA_LOG_LEVEL": "warning", "QA_ACCESS_LOG": "false",
           **env_extra}
    log = open(tmp / f"server-{tag}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError((tmp / f"server-{tag}.log").read_text()[-2000:])
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{tag} server not ready")
        r = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "load.py"), "--drive", url, "--drive-clients", str(args.clients),
             "--duration", str(args.duration), "--warmup", "2", "--questions-file", str(qfile), "--start", "0"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )
        return json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=str(SHARED / "cmrc2018" / "cmrc2018_dev.json"))
    ap.add_argument("--distractors", default=str(SHARED / "zh-tech-corpus"),
                    help="distractor articles in the same index ('none': CMRC paragraphs only)")
    ap.add_argument("--index", default=str(Path(tempfile.gettempdir()) / "zh-qa-milvus-bench" / "index"),
                    help="the eval index (built once, reused)")
    ap.add_argument("--limit", type=int, default=300, help="CMRC questions ranked per variant")
    ap.add_argument("--paragraphs", type=int, default=0,
                    help="index only this many CMRC paragraphs (the questions' own first); 0 = all")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds of the load run per store")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--unchanged-only", action="store_true",
                    help="only the unchanged 593-file re-ingest, added to an existing --out")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    from qa.assistant import Assistant
    from qa.config import Settings
    from qa.vectors.milvus import forget_clients, local_generation_dir, publish_to_milvus
    from tests.conftest import free_port
    from tests.milvus_peer import MilvusLiteServer, milvus_env

    tmp = Path(tempfile.mkdtemp(prefix="zh-qa-milvus-bench-"))
    t_all = time.perf_counter()
    base = Settings(index_dir=Path(args.index))
    result: dict = {
        "machine": {"shared": True, "note": "2 cores shared with other developers' jobs: compare ratios, not absolutes",
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_start": os.getloadavg()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "dataset": {"path": args.dataset, "questions": args.limit, "paragraphs": args.paragraphs or "all",
                    "distractors": args.distractors},
    }
    srv = MilvusLiteServer(tmp / "milvus-data", free_port()).start()
    try:
        settings = base.model_copy(update={"vector_store": "milvus", "milvus_uri": srv.uri,
                                           "milvus_collection": "bench_qa", "milvus_timeout_s": 30.0})
        if args.unchanged_only:
            prev = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
            prev["unchanged_reingest_593"] = unchanged_593(args, settings, tmp)
            prev.setdefault("machine", result["machine"])
            prev["unchanged_reingest_593"]["loadavg"] = os.getloadavg()
            Path(args.out).write_text(json.dumps(prev, ensure_ascii=False, indent=2) + "\n")
            print(json.dumps(prev["unchanged_reingest_593"], indent=1))
            return
        result["index"] = build_index(args, base)
        pub = publish_to_milvus(local_generation_dir(Path(args.index)), settings)
        rows = pub["rows"]
        data_bytes = du(tmp / "milvus-data")
        result["publish"] = {**pub, "milvus_lite_data_bytes": data_bytes,
                             "bytes_per_passage_on_disk": round(data_bytes / max(rows, 1)),
                             "bytes_per_passage_payload": round(pub["bytes"] / max(rows, 1))}
        gen = local_generation_dir(Path(args.index))
        local_bytes = sum(f.stat().st_size for f in gen.iterdir() if f.is_file())
        result["publish"]["faiss_sqlite_bytes_per_passage"] = round(local_bytes / max(rows, 1))
        if args.distractors not in ("", "none"):
            result["unchanged_reingest"] = unchanged_reingest(args, settings)
        result["unchanged_reingest_593"] = unchanged_593(args, settings, tmp)

        faiss_bot = Assistant.open(Path(args.index), settings=base)
        milvus_bot = Assistant.open(settings=settings.model_copy(update={"index_dir": tmp / "no-index"}))
        result["quality"] = quality(args, faiss_bot, milvus_bot)

        if not args.skip_load:
            qfile = tmp / "questions.json"
            qfile.write_text(json.dumps([q.question for q in dataset(args).questions], ensure_ascii=False))
            f = serve_and_drive(args, {}, qfile, "faiss", tmp)
            m = serve_and_drive(args, milvus_env(srv.uri, alias="bench_qa", milvus_timeout_s=10), qfile, "milvus", tmp)
            result["load"] = {
                "clients": args.clients, "faiss": f, "milvus": m,
                "p50_ratio_milvus_over_faiss": round(m["p50_ms"] / f["p50_ms"], 2),
                "qps_ratio_milvus_over_faiss": round(m["qps"] / f["qps"], 2),
            }
    finally:
        forget_clients()
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["machine"]["loadavg_end"] = os.getloadavg()
    result["seconds"] = round(time.perf_counter() - t_all, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("quality", "unchanged_reingest") if k in result}, ensure_ascii=False, indent=1))
    print(json.dumps(result.get("load", {}), indent=1))


if __name__ == "__main__":
    main()
