#!/usr/bin/env python3
"""Peer benchmark: our production retrieval (``qa eval``) vs txtai on the same questions.

One command, run with the project venv::

    .venv/bin/python bench/peers.py                       # all three sets, full
    .venv/bin/python bench/peers.py --datasets cmrc --limit 200

What it does, in one run:

1. For each question set (SQuAD format), every paragraph becomes one article
   (``qa.evaluate.write_corpus``), read back with ``qa.documents.iter_corpus`` and
   cut by our chunker with the production settings, so txtai indexes exactly the
   passages our index holds (the passage count is checked against ``qa eval``'s).
   A second txtai index takes each whole paragraph as one unit.
2. txtai (pinned in bench/requirements-peers.txt) runs in its own venv,
   ``bench/.venv-txtai`` (created on first use, torch CPU wheel first), as a
   subprocess of this script (``--worker`` mode), with the same embedding model
   folder as ours (``qa.e5convert.ensure_default_model``), e5 prefixes, and hybrid
   dense + BM25 over character bigrams. It returns ranked unit ids only.
3. ``qa eval <set> --json`` (the /ask code path) runs as a subprocess.
4. Both systems' top-10 lists are scored with the same code:
   ``qa.evaluate.passage_hit`` and ``qa.evaluate.ranking_metrics``.

Prints a side-by-side table and writes bench/results/peers.json (machine,
versions, settings, timings, metrics).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
VENV = BENCH / ".venv-txtai"
REQUIREMENTS = BENCH / "requirements-peers.txt"
TORCH_PIN = "torch==2.13.0"  # CPU wheel; installed before anything that depends on torch
TXTAI_PIN = "9.14.0"
DEFAULT_DATA = Path(os.environ.get("QA_BENCH_DATA", ROOT.parent / "shared" / "data"))
DATASETS = {
    "cmrc": "cmrc2018/cmrc2018_dev.json",
    "drcd": "drcd/DRCD_dev.json",  # Traditional Chinese
    "xquad": "xquad/xquad.zh.json",
}
K = 10
METRICS = ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10")
# txtai hybrid weight = share of the dense score in its convex fusion (0.5 is txtai's default).
# Ablations reuse the same index: 1.0 = dense only, 0.0 = BM25 (bigrams) only.
WEIGHTS = {"hybrid": 0.5, "dense": 1.0, "bm25": 0.0}


def txtai_config(model_path: str) -> dict:
    """txtai 9.14's hybrid index: dense (our e5 folder) + BM25 over character bigrams.

    ``method: meanpooling`` (transformers + mean pooling, what the folder's
    1_Pooling does) with ``instructions`` prepends exactly "query: " / "passage: ".
    (``method: sentence-transformers`` with ``instructions`` was checked and
    double-prefixes queries, because encode_query also applies the folder's saved
    "query" prompt, and without ``instructions`` it leaves passages unprefixed.)
    A ``scoring`` section plus a vector model is what ``hybrid: true`` expands to;
    the Tokenizer's ``ngrams: 2`` splits on non-word characters and emits every
    2-character slice of each run (so CJK runs become overlapping bigrams).
    ``normalize: true`` makes txtai fuse with a convex combination of scores.
    """
    return {
        "path": model_path,
        "method": "meanpooling",
        "instructions": {"query": "query: ", "data": "passage: "},
        "maxlength": 512,
        "content": False,
        "scoring": {"method": "bm25", "terms": True, "normalize": True, "tokenizer": {"ngrams": 2}},
    }


# --------------------------------------------------------------------------- worker (txtai venv)


def worker(inp: Path, out: Path) -> None:
    """Runs inside bench/.venv-txtai: index each job's units, return ranked ids per query."""
    from importlib import metadata

    import torch
    from txtai import Embeddings

    spec = json.loads(inp.read_text(encoding="utf-8"))
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    weights: dict[str, float] = spec["weights"]
    result = {
        "versions": {p: _version(metadata, p) for p in ("txtai", "torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy")},
        "torch_threads": torch.get_num_threads(),
        "jobs": {},
    }
    models: dict = {}  # txtai's model cache: the transformer is loaded once for all jobs
    for job in spec["jobs"]:
        t0 = time.perf_counter()
        emb = Embeddings(spec["config"], models=models)
        emb.index((i, text, None) for i, text in enumerate(job["texts"]))
        index_s = time.perf_counter() - t0
        ranked: dict[str, list[list[int]]] = {}
        search_s: dict[str, float] = {}
        for name, w in weights.items():
            t1 = time.perf_counter()
            rows: list[list[int]] = []
            queries = job["queries"]
            for b in range(0, len(queries), 64):
                for hits in emb.batchsearch(queries[b : b + 64], spec["k"], weights=w):
                    rows.append([int(uid) for uid, _ in hits])
            ranked[name] = rows
            search_s[name] = time.perf_counter() - t1
        result["jobs"][job["name"]] = {
            "units": len(job["texts"]),
            "index_s": round(index_s, 1),
            "search_ms_per_query": {n: round(s * 1000 / max(len(job["queries"]), 1), 2) for n, s in search_s.items()},
            "ranked": ranked,
        }
        print(f"[txtai] {job['name']}: {len(job['texts'])} units indexed in {index_s:.0f}s, "
              f"{len(job['queries'])} queries x {len(weights)} weightings in {sum(search_s.values()):.0f}s", file=sys.stderr, flush=True)
        emb.close()
    out.write_text(json.dumps(result), encoding="utf-8")


def _version(metadata, name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------- txtai venv


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_txtai_venv(log) -> Path:
    """Create bench/.venv-txtai on first use; reinstall the pins when txtai is missing or another version."""
    py = venv_python()
    if not py.exists():
        log(f"creating {VENV.relative_to(ROOT)} (one-off: a few minutes)")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('txtai'))"],
                           capture_output=True, text=True)
    if probe.returncode != 0 or probe.stdout.strip() != TXTAI_PIN:
        log(f"installing {TORCH_PIN} (CPU wheel) then {REQUIREMENTS.relative_to(ROOT)} into {VENV.relative_to(ROOT)}")
        pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, TORCH_PIN], check=True)
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    return py


# --------------------------------------------------------------------------- units (project venv)


def build_units(dataset: Path, limit: int | None, distractors: Path | None, text_mode: str, tmp: Path):
    """Our passages (identical to what `qa eval` indexes) and whole-paragraph units for one set."""
    from qa.chunks import ChunkerConfig, chunk_document
    from qa.config import Settings
    from qa.documents import Skipped, iter_corpus
    from qa.evaluate import load_squad, write_corpus

    settings = Settings()
    cfg = ChunkerConfig(settings.chunk_size, settings.chunk_hard_limit, settings.chunk_overlap_sentences)
    ds = load_squad(dataset, limit)
    corpus = tmp / f"corpus-{dataset.stem}"
    write_corpus(ds, corpus)

    def chunks_of(root: Path) -> list[dict]:
        out = []
        for doc in iter_corpus(root):
            if isinstance(doc, Skipped):
                continue
            for ch in chunk_document(doc, cfg):
                out.append({"doc": ch.doc_path, "text": ch.text,
                            "index_text": ch.embed_text(doc.title) if text_mode == "embed" else ch.text})
        return out

    chunks = chunks_of(corpus)
    extra = chunks_of(distractors) if distractors else []
    paragraphs = [{"doc": name, "text": context,
                   "index_text": f"{title}\n{context}" if text_mode == "embed" else context}
                  for name, (title, context) in ds.docs.items()]
    return ds, {"chunks": chunks + extra, "paragraphs": paragraphs + extra}, cfg


def score(questions, units: list[dict], ranked: list[list[int]]) -> dict[str, float]:
    from qa.evaluate import passage_hit, ranking_metrics

    relevance = [[passage_hit(q, units[i]["doc"], units[i]["text"]) for i in ids[:K]] for q, ids in zip(questions, ranked)]
    return {k: round(v, 4) for k, v in ranking_metrics(relevance).items()}


# --------------------------------------------------------------------------- ours (project venv)


def run_ours(dataset: Path, limit: int | None, distractors: Path | None, log) -> dict:
    qa = Path(sys.executable).parent / "qa"
    cmd = [str(qa)] if qa.exists() else [sys.executable, "-m", "qa.cli"]
    cmd += ["eval", str(dataset), "--json"]
    if limit:
        cmd += ["--limit", str(limit)]
    if distractors:
        cmd += ["--distractors", str(distractors)]
    log("running: " + " ".join(cmd[-6:] if len(cmd) > 6 else cmd))
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"qa eval failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout[proc.stdout.index("{"):])
    out["wall_s"] = round(time.perf_counter() - t, 1)
    return out


# --------------------------------------------------------------------------- report


def machine_info() -> dict:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib import metadata

    def v(p):
        try:
            return metadata.version(p)
        except metadata.PackageNotFoundError:
            return None

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    def git(*a):
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    return {
        "git_head": git("rev-parse", "HEAD"),
        # `qa eval` runs the working tree: record what in it differs from HEAD
        "git_dirty": (git("status", "--porcelain", "--", "qa", "api", "pyproject.toml") or "").splitlines(),
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in load] if load else None,
        "project_venv": {p: v(p) for p in ("zh-qa", "torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy")},
    }


def table(rows: list[list], header: list[str], markdown: bool = False) -> str:
    cells = [[str(c) for c in r] for r in [header, *rows]]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" if i < 3 else "---:" for i in range(len(header))) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells[1:]])
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths]), *map(fmt, cells[1:])])


def result_rows(results: dict) -> list[list]:
    rows = []
    for name, r in results["datasets"].items():
        for system in r["systems"]:
            m = system["metrics"]
            rows.append([name, system["system"], system["units"], *[f"{m[k]:.3f}" for k in METRICS]])
    return rows


def save(results: dict, out: Path, t_start: float) -> None:
    results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results["wall_s"] = round(time.perf_counter() - t_start, 1)
    try:
        results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="cmrc,drcd,xquad", help="comma-separated: " + ",".join(DATASETS))
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding the sets (default %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N questions of each set (all paragraphs are indexed)")
    ap.add_argument("--distractors", nargs="?", type=Path, const=DEFAULT_DATA / "zh-tech-corpus", default=None,
                    help="also index this folder of articles (default when given bare: %(const)s)")
    ap.add_argument("--skip-ours", action="store_true", help="do not run `qa eval`")
    ap.add_argument("--skip-txtai", action="store_true", help="do not run txtai")
    ap.add_argument("--ablations", action="store_true", help="also score txtai dense-only and BM25-bigram-only (same index)")
    ap.add_argument("--txtai-text", choices=("embed", "text"), default="embed",
                    help="what txtai indexes per passage: embed = title > headings + passage (what our model sees), text = passage only")
    ap.add_argument("--paragraphs", default="all",
                    help="sets that also get txtai's whole-paragraph-as-unit index: 'all' or comma-separated names")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for txtai (0 = torch default)")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "peers.json")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--worker", nargs=2, type=Path, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        worker(*args.worker)
        return 0

    sys.path.insert(0, str(ROOT))
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        ap.error(f"unknown dataset(s) {unknown}; choose from {list(DATASETS)}")
    paths = {n: args.data / DATASETS[n] for n in names}
    for p in paths.values():
        if not p.exists():
            ap.error(f"{p} not found")
    if args.distractors and not args.distractors.exists():
        ap.error(f"{args.distractors} not found")

    t_start = time.perf_counter()
    log = lambda msg: print(f"[peers {time.perf_counter() - t_start:6.0f}s] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    results: dict = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "settings": {"datasets": {n: str(p) for n, p in paths.items()}, "limit": args.limit,
                     "distractors": str(args.distractors) if args.distractors else None, "k": K,
                     "txtai_text": args.txtai_text},
        "datasets": {},
    }

    weights = dict(WEIGHTS) if args.ablations else {"hybrid": WEIGHTS["hybrid"]}
    para_sets = set(names) if args.paragraphs == "all" else {n.strip() for n in args.paragraphs.split(",") if n.strip()}
    results["settings"]["paragraph_variant_sets"] = [n for n in names if n in para_sets]
    config = py = None
    if not args.skip_txtai:
        from qa.config import Settings
        from qa.e5convert import ensure_default_model

        config = txtai_config(str(ensure_default_model(Settings().cache_dir)))
        results["settings"]["txtai_config"] = config
        results["settings"]["txtai_weights"] = weights
        py = ensure_txtai_venv(log)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    # One set at a time, results written after each, so a long run that is cut short keeps what it finished.
    for n, path in paths.items():
        with tempfile.TemporaryDirectory(prefix="peers-") as tmpname:
            tmp = Path(tmpname)
            ds, units, cfg = build_units(path, args.limit, args.distractors, args.txtai_text, tmp)
            results["settings"]["chunker"] = cfg.fingerprint()
            log(f"{n}: {len(ds.questions)} questions, {len(ds.docs)} paragraphs, {len(units['chunks'])} passages")
            entry = {"questions": len(ds.questions), "paragraphs": len(ds.docs),
                     "passages": len(units["chunks"]), "systems": []}
            if not args.skip_ours:
                ours = run_ours(path, args.limit, args.distractors, log)
                if ours["index"]["passages"] != len(units["chunks"]):
                    log(f"WARNING {n}: qa eval indexed {ours['index']['passages']} passages, the chunker gave {len(units['chunks'])}")
                entry["systems"].append({
                    "system": f"ours ({ours.get('method', 'hybrid')}, qa eval)", "units": ours["index"]["passages"],
                    "metrics": {k: ours[k] for k in METRICS},
                    "extra": {k: ours.get(k) for k in ("answer_hit", "answer_chars_mean", "latency_ms_p50", "latency_ms_p95",
                                                        "refused_answerable")},
                    "index_s": ours["index"]["seconds"], "wall_s": ours["wall_s"], "settings": ours.get("settings"),
                })
                log(f"{n}: qa eval done in {ours['wall_s']:.0f}s")
            if not args.skip_txtai:
                variants = ["chunks", "paragraphs"] if n in para_sets else ["chunks"]
                spec = {"config": config, "weights": weights, "k": K, "threads": args.threads, "jobs": [
                    {"name": f"{n}/{unit}", "texts": [u["index_text"] for u in units[unit]],
                     "queries": [q.question for q in ds.questions]} for unit in variants]}
                inp, outp = tmp / "txtai-in.json", tmp / "txtai-out.json"
                inp.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
                log(f"{n}: txtai worker ({py.relative_to(ROOT)}): {', '.join(variants)}")
                t = time.perf_counter()
                subprocess.run([str(py), str(Path(__file__).resolve()), "--worker", str(inp), str(outp)], check=True, env=env)
                txtai_out = json.loads(outp.read_text(encoding="utf-8"))
                results["txtai"] = {"versions": txtai_out["versions"], "torch_threads": txtai_out["torch_threads"]}
                for unit in variants:
                    job = txtai_out["jobs"][f"{n}/{unit}"]
                    for wname, ranked in job["ranked"].items():
                        label = "passages" if unit == "chunks" else "whole paragraphs"
                        entry["systems"].append({
                            "system": f"txtai {wname} ({label})", "units": job["units"],
                            "metrics": score(ds.questions, units[unit], ranked),
                            "index_s": job["index_s"], "search_ms_per_query": job["search_ms_per_query"][wname],
                        })
                entry["txtai_wall_s"] = round(time.perf_counter() - t, 1)
                log(f"{n}: txtai done in {entry['txtai_wall_s']:.0f}s")
            results["datasets"][n] = entry
            save(results, args.out, t_start)
            print(table(result_rows({"datasets": {n: entry}}), ["set", "system", "units", *METRICS]), file=sys.stderr, flush=True)

    save(results, args.out, t_start)
    header = ["set", "system", "units", *METRICS]
    print(table(result_rows(results), header, markdown=args.markdown))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
