"""Load benchmark of the HTTP service: the real server, real questions, concurrent clients.

    .venv/bin/qa ingest ../shared/data/zh-tech-corpus --index bench/.index-zhtech   # once (~10+ min cold)
    .venv/bin/python bench/load.py                                                  # ~1.5 min

What it does:

1. starts the production server (``uvicorn api.main:create_app --factory``, one process, JSON
   access log, an API key required) on 127.0.0.1 over the zh-tech-corpus index and measures the
   cold start: process start to ``/healthz``, to ``/readyz`` and to the first answer;
2. for each client count (1, 4, 16, 64) runs a *separate* driver process (``--drive``) with
   that many concurrent keep-alive clients, each asking its next question as soon as the last
   was answered, for ``--duration`` seconds after a short warm-up; it records every latency
   and status;
3. reports QPS, p50/p95/p99/max latency, errors, server RSS, the load of the machine, and the
   index's bytes per passage; writes ``bench/results/load.json`` and the table in
   ``bench/README.md`` (section "Load (bench/load.py)", other sections are kept).

Questions: every heading and title of the corpus turned into a question ("<heading>是什么？",
"如何<heading>？", headings that already are questions as they are) plus hand-written ones,
shuffled with a fixed seed; the clients of all runs share one cursor, so a question is asked
once until the pool is exhausted (the report counts repeats): the numbers are for questions
the server has not seen, i.e. not for the query-embedding cache.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import tempfile
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "zh-tech-corpus"
DEFAULT_INDEX = ROOT / "bench" / ".index-zhtech"
RESULTS = ROOT / "bench" / "results" / "load.json"
README = ROOT / "bench" / "README.md"
SECTION = "## Load (bench/load.py)"
API_KEY = "bench-key"

TARGETS = {
    "single_client_p50_ms": 25.0,
    "single_client_p99_ms": 60.0,
    "qps_at_16": 60.0,
    "p99_at_16_ms": 500.0,
    "cold_start_s": 8.0,
}

HAND_WRITTEN = [
    "k8s 和 Docker 是什么关系？",
    "Helm 怎么回滚到上一个版本？",
    "如何查看 Pod 的日志？",
    "Deployment 和 StatefulSet 有什么区别？",
    "Service 的 ClusterIP 是什么？",
    "怎么给节点打污点？",
    "Kube-OVN 如何配置子网？",
    "TiDB Operator 怎么扩容 TiKV？",
    "什么是服务网格？",
    "Ingress 有什么作用？",
    "如何升级 Helm chart？",
    "ConfigMap 怎么挂载到容器里？",
    "kubectl apply 和 kubectl create 的区别是什么？",
    "什么是不可变基础设施？",
    "如何备份 TiDB 集群？",
    "Pod 一直处于 Pending 状态怎么办？",
    "什么是 Operator 模式？",
    "Helm 的 values.yaml 怎么覆盖？",
    "如何限制容器的 CPU 和内存？",
    "Kube-OVN 支持哪些网络模式？",
]

CJK = re.compile(r"[\u4e00-\u9fff]")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,4}\s+(.+?)\s*#*\s*$")
TITLE = re.compile(r"^title:\s*[\"']?(.+?)[\"']?\s*$")


def _clean(h: str) -> str:
    h = re.sub(r"\{\{.*?\}\}|<[^>]+>|\{#.*?\}|[`*_]", "", h)
    h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h)
    return h.strip(" :：-")


def corpus_questions(corpus: Path, seed: int = 0) -> list[str]:
    """Questions from headings and titles (deterministic order), hand-written ones mixed in."""
    topics: set[str] = set()
    for path in sorted(corpus.rglob("*.md*")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        in_code = False
        for line in text.splitlines():
            if FENCE.match(line):
                in_code = not in_code
                continue
            if in_code:
                continue
            m = HEADING.match(line) or TITLE.match(line)
            if m:
                h = _clean(m.group(1))
                if 2 <= len(h) <= 40 and (CJK.search(h) or re.fullmatch(r"[A-Za-z][\w .+/-]{2,}", h)):
                    topics.add(h)
    questions: set[str] = set()
    for h in sorted(topics):
        if h.endswith(("？", "?")):
            questions.add(h)
            continue
        questions.add(f"{h}是什么？")
        if CJK.search(h):
            questions.add(f"如何{h}？" if not h.startswith(("如何", "怎么", "使用")) else f"{h}怎么做？")
        else:
            questions.add(f"{h} 有什么用？")
    pool = sorted(questions)
    random.Random(seed).shuffle(pool)
    # hand-written ones spread through the pool
    for i, q in enumerate(HAND_WRITTEN):
        pool.insert((i * 37) % (len(pool) + 1), q)
    return pool


# ---- the driver (a separate process) ---------------------------------------------------------
async def _drive(url: str, clients: int, duration: float, warmup: float, questions: list[str], start: int) -> dict:
    import httpx

    cursor = start
    lat: list[float] = []
    errors: dict[str, int] = {}
    done = 0
    t_start = time.perf_counter()
    t_measure = t_start + warmup
    t_end = t_measure + duration
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal cursor, done
        while True:
            now = time.perf_counter()
            if now >= t_end:
                return
            q = questions[cursor % len(questions)]
            cursor += 1
            t0 = time.perf_counter()
            try:
                r = await http.post(url + "/ask", json={"question": q, "top_k": 5}, headers=headers)
                status = str(r.status_code)
                ok = r.status_code == 200 and "answer" in r.json()
            except Exception as exc:  # noqa: BLE001 - a failed request is a data point
                status, ok = type(exc).__name__, False
            t1 = time.perf_counter()
            if t0 >= t_measure and t1 <= t_end:
                done += 1
                if ok:
                    lat.append((t1 - t0) * 1000)
                else:
                    errors[status] = errors.get(status, 0) + 1

    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    lat.sort()

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 2) if lat else float("nan")

    return {
        "clients": clients,
        "duration_s": duration,
        "requests": done,
        "ok": len(lat),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "qps": round(len(lat) / duration, 1),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": round(lat[-1], 2) if lat else None,
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
        "questions_used": cursor - start,
    }


# ---- the orchestrator ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> dict:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = round(int(v.split()[0]) / 1024, 1)
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("Pss", "Shared_Clean", "Private_Dirty"):
                out[k] = round(int(v.split()[0]) / 1024, 1)
    except OSError:
        pass
    return {"rss_mb": out.get("VmRSS"), "peak_rss_mb": out.get("VmHWM"), "pss_mb": out.get("Pss"),
            "shared_clean_mb": out.get("Shared_Clean"), "private_dirty_mb": out.get("Private_Dirty")}


def _machine(env: dict) -> dict:
    import faiss
    import torch

    cpu = "?"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    mem = "?"
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":")[1].strip()
    except OSError:
        pass
    return {
        "cpu": cpu, "cores": usable, "memory": mem, "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "faiss": getattr(faiss, "__version__", "?"),
        "server_env": {k: v for k, v in env.items() if k.startswith("QA_") and k != "QA_API_KEYS"},
    }


def _wait(url: str, path: str, proc: subprocess.Popen, deadline: float, ok=lambda r: r.status_code == 200):
    import httpx

    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            r = httpx.get(url + path, timeout=2, headers={"Authorization": f"Bearer {API_KEY}"})
            if ok(r):
                return time.perf_counter()
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{path} not ready in time")


def _index_memory(index_dir: Path) -> dict:
    from qa.store import IndexReader

    r = IndexReader(index_dir)
    faiss_bytes = (r.path / "vectors.faiss").stat().st_size
    dim = r.faiss.d
    return {
        "generation": r.generation,
        "passages": r.n_chunks,
        "documents": r.n_docs,
        "disk_bytes": r.size_bytes(),
        "disk_bytes_per_passage": round(r.size_bytes() / max(1, r.n_chunks)),
        "faiss_bytes": faiss_bytes,
        "faiss_bytes_per_passage": round(faiss_bytes / max(1, r.n_chunks)),
        "vector_bytes_per_passage": dim * 4,
        "faiss_type": type(r.faiss).__name__,
        "dim": dim,
    }


def _session(args, index: Path, qfile: Path, client_levels: list[int], cursor: int, hot: int, log_name: str,
             extra_env: dict | None = None) -> dict:
    """Start a server, measure its cold start, drive it at each client count, stop it."""
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "QA_INDEX_DIR": str(index),
        "QA_API_KEYS": API_KEY,
        "QA_LOG_FORMAT": "json",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **(extra_env or {}),
    }
    log_path = Path(args.tmp) / log_name
    cmd = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--no-access-log", "--timeout-keep-alive", "30"]
    label = " (" + ", ".join(f"{k}={v}" for k, v in extra_env.items()) + ")" if extra_env else ""
    t0 = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = t0 + 300
        t_health = _wait(url, "/healthz", proc, deadline)
        t_ready = _wait(url, "/readyz", proc, deadline)
        r = httpx.post(url + "/ask", json={"question": "Kubernetes 的 Pod 是什么？"},
                       headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
        t_first = time.perf_counter()
        assert r.status_code == 200, r.text
        cold = {"to_healthz_s": round(t_health - t0, 2), "to_readyz_s": round(t_ready - t0, 2),
                "to_first_answer_s": round(t_first - t0, 2)}
        print(f"cold start{label}: healthz {cold['to_healthz_s']} s, readyz {cold['to_readyz_s']} s, "
              f"first answer {cold['to_first_answer_s']} s", flush=True)
        idle = _rss_mb(proc.pid)
        levels = []
        for n in client_levels:
            load_before = os.getloadavg()[0]
            res = _run_driver(args, url, n, qfile, cursor)
            cursor += res["questions_used"]
            res["server"] = _rss_mb(proc.pid)
            res["loadavg_1m_before"] = round(load_before, 2)
            levels.append(res)
            print(f"{n:>3} clients{label}: {res['qps']:>6} QPS  p50 {res['p50_ms']} ms  p95 {res['p95_ms']} ms  "
                  f"p99 {res['p99_ms']} ms  errors {res['errors']}  RSS {res['server']['rss_mb']} MB", flush=True)
        hot_res = None
        if hot:  # the same 20 questions over and over: the embedding cache answers, the rest is measured
            hfile = Path(args.tmp) / "hot.json"
            hfile.write_text(json.dumps(HAND_WRITTEN, ensure_ascii=False), encoding="utf-8")
            load_before = os.getloadavg()[0]
            hot_res = _run_driver(args, url, hot, hfile, 0)
            hot_res["server"] = _rss_mb(proc.pid)
            hot_res["loadavg_1m_before"] = round(load_before, 2)
            print(f"{hot:>3} clients, repeated questions: {hot_res['qps']} QPS  p50 {hot_res['p50_ms']} ms  "
                  f"p99 {hot_res['p99_ms']} ms  errors {hot_res['errors']}", flush=True)
        batches = _batch_stats(httpx.get(url + "/metrics", timeout=10).text)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    log_lines = log_path.read_text(errors="replace").splitlines()
    errors = [ln for ln in log_lines if '"level": "error"' in ln or "Traceback" in ln]
    return {"env": env, "command": " ".join(cmd[1:]), "cold": cold, "idle": idle, "levels": levels, "hot": hot_res,
            "batches": batches, "cursor": cursor, "log_lines": len(log_lines), "error_log_lines": len(errors)}


def _run_driver(args, url: str, clients: int, qfile: Path, start: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--drive", url, "--drive-clients", str(clients), "--duration", str(args.duration),
         "--warmup", str(args.warmup), "--questions-file", str(qfile), "--start", str(start)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args) -> dict:
    index = Path(args.index)
    if not (index / "CURRENT").exists():
        sys.exit(f"no index in {index}: build it with `.venv/bin/qa ingest {args.corpus} --index {index}`")
    questions = corpus_questions(Path(args.corpus))
    qfile = Path(args.tmp) / "questions.json"
    qfile.parent.mkdir(parents=True, exist_ok=True)
    qfile.write_text(json.dumps(questions, ensure_ascii=False), encoding="utf-8")
    if args.question_log_ab:
        return question_log_ab(args, index, qfile, len(questions))
    main = _session(args, index, qfile, args.clients, cursor=0, hot=args.hot, log_name="server.log")
    cursor = main["cursor"]
    compare = None
    if args.compare_unbatched:  # the same server with micro-batching off, at N clients, for comparison
        compare = _session(args, index, qfile, [args.compare_unbatched], cursor=cursor, hot=0,
                           log_name="server-unbatched.log", extra_env={"QA_EMBED_BATCH_MAX": "1"})
        cursor = compare["cursor"]
    result = {
        "benchmark": "bench/load.py",
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": _machine(main["env"]),
        "server": {"command": main["command"], "settings": _server_settings(),
                   "cold_start": main["cold"], "idle": main["idle"], "log_lines": main["log_lines"],
                   "error_log_lines": main["error_log_lines"], "embed_batches": main["batches"]},
        "index": {"path": str(index), "corpus": str(args.corpus), **_index_memory(index)},
        "questions": {"pool": len(questions), "asked": cursor, "repeated": max(0, cursor - len(questions))},
        "levels": main["levels"],
        "repeated_questions": main["hot"],
        "unbatched": None if compare is None else {
            "env": {"QA_EMBED_BATCH_MAX": "1"}, "levels": compare["levels"], "cold_start": compare["cold"],
        },
        "targets": TARGETS,
    }
    result["verdict"] = _verdict(result)
    return result


def question_log_ab(args, index: Path, qfile: Path, pool: int) -> dict:
    """What the question log costs /ask: the same server with QA_QUESTION_LOG=off and on,
    alternated (off, on, off, on...) so that a change in the shared machine's load hits both."""
    state = Path(args.tmp) / "question-log-state"
    state.mkdir(parents=True, exist_ok=True)
    runs, cursor = [], 0
    clients = args.clients
    for i in range(args.question_log_ab):
        for mode in ("off", "on"):
            r = _session(args, index, qfile, clients, cursor=cursor, hot=0, log_name=f"server-qlog-{mode}-{i}.log",
                         extra_env={"QA_QUESTION_LOG": mode, "QA_STATE_DIR": str(state)})
            cursor = r["cursor"]
            runs.append({"mode": mode, "round": i, "levels": r["levels"], "error_log_lines": r["error_log_lines"]})
    summary = {}
    for n in clients:
        by = {m: [lv for r in runs if r["mode"] == m for lv in r["levels"] if lv["clients"] == n] for m in ("off", "on")}
        p50 = {m: statistics.median(lv["p50_ms"] for lv in v) for m, v in by.items()}
        qps = {m: statistics.median(lv["qps"] for lv in v) for m, v in by.items()}
        summary[str(n)] = {"p50_ms_off": p50["off"], "p50_ms_on": p50["on"], "p50_added_ms": round(p50["on"] - p50["off"], 2),
                           "qps_off": qps["off"], "qps_on": qps["on"]}
    return {
        "benchmark": "bench/load.py --question-log-ab",
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": _machine({}),
        "note": "shared machine (2 cores, other developers): off/on alternate so load changes hit both; "
                "medians over rounds",
        "index": str(index), "questions_pool": pool, "questions_asked": cursor,
        "duration_s": args.duration, "rounds": args.question_log_ab,
        "summary": summary, "runs": runs, "target": {"p50_added_ms_max": 1.0},
    }


def _server_settings() -> dict:
    from qa.config import Settings

    from api.runtime import AssistantHolder

    s = Settings()
    keys = ("worker_threads", "max_pending", "embed_batch_ms", "embed_batch_max", "threads", "precision",
            "max_body_bytes", "rate_limit", "log_format", "access_log")
    out = {k: getattr(s, k) for k in keys}
    out["worker_threads_effective"] = AssistantHolder(s).threads
    return out


def _batch_stats(metrics_text: str) -> dict:
    count = total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("qa_embed_batch_size_count"):
            count = float(line.split()[-1])
        elif line.startswith("qa_embed_batch_size_sum"):
            total = float(line.split()[-1])
    return {"batches": int(count), "questions": int(total), "mean_batch": round(total / count, 2) if count else None}


def _verdict(r: dict) -> dict:
    by = {lv["clients"]: lv for lv in r["levels"]}
    v = {}
    if 1 in by:
        v["single_client_p50_ms"] = {"value": by[1]["p50_ms"], "target": "<= 25", "ok": by[1]["p50_ms"] <= 25}
        v["single_client_p99_ms"] = {"value": by[1]["p99_ms"], "target": "<= 60", "ok": by[1]["p99_ms"] <= 60}
    if 16 in by:
        v["qps_at_16"] = {"value": by[16]["qps"], "target": ">= 60", "ok": by[16]["qps"] >= 60}
        v["p99_at_16_ms"] = {"value": by[16]["p99_ms"], "target": "<= 500", "ok": by[16]["p99_ms"] <= 500}
        v["errors_at_16"] = {"value": by[16]["errors"], "target": "0", "ok": by[16]["errors"] == 0}
    c = r["server"]["cold_start"]["to_first_answer_s"]
    v["cold_start_s"] = {"value": c, "target": "<= 8", "ok": c <= 8}
    v["errors_total"] = {"value": sum(lv["errors"] for lv in r["levels"]), "target": "0",
                         "ok": all(lv["errors"] == 0 for lv in r["levels"])}
    return v


# ---- the report ------------------------------------------------------------------------------
def render_section(r: dict) -> str:
    m, s, ix = r["machine"], r["server"], r["index"]
    lines = [
        SECTION,
        "",
        "The HTTP service under concurrent load: `bench/load.py` starts the production server "
        "(`uvicorn api.main:create_app --factory`, one process, JSON access log, API key required) "
        "on 127.0.0.1 over the zh-tech-corpus index, then a separate driver process keeps N "
        f"keep-alive clients asking questions for {r['levels'][0]['duration_s']:g} s per level "
        "(questions made from the corpus headings plus hand-written ones, each asked once: "
        f"{r['questions']['asked']} asked from a pool of {r['questions']['pool']}, "
        f"{r['questions']['repeated']} repeats, so these are embedding-cache misses).",
        "",
        "```",
        ".venv/bin/qa ingest ../shared/data/zh-tech-corpus --index bench/.index-zhtech",
        ".venv/bin/python bench/load.py            # writes bench/results/load.json and this section",
        "```",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM; Python {m['python']}, torch {m['torch']}, "
        f"faiss {m['faiss']}; run {r['when']}. Index: {ix['passages']} passages from {ix['documents']} documents "
        f"({ix['faiss_type']}, {ix['dim']} dims).",
        "",
        "| clients | QPS | p50 ms | p95 ms | p99 ms | max ms | errors | server RSS MB | load avg before |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in r["levels"]:
        lines.append(
            f"| {lv['clients']} | {lv['qps']} | {lv['p50_ms']} | {lv['p95_ms']} | {lv['p99_ms']} | {lv['max_ms']} "
            f"| {lv['errors']} | {lv['server']['rss_mb']} | {lv['loadavg_1m_before']} |"
        )
    h = r.get("repeated_questions")
    if h:
        lines.append(
            f"| {h['clients']}, repeated questions | {h['qps']} | {h['p50_ms']} | {h['p95_ms']} | {h['p99_ms']} "
            f"| {h['max_ms']} | {h['errors']} | {h['server']['rss_mb']} | {h.get('loadavg_1m_before', '')} |"
        )
    u = r.get("unbatched")
    if u:
        for lv in u["levels"]:
            lines.append(
                f"| {lv['clients']}, micro-batching off | {lv['qps']} | {lv['p50_ms']} | {lv['p95_ms']} | {lv['p99_ms']} "
                f"| {lv['max_ms']} | {lv['errors']} | {lv['server']['rss_mb']} | {lv['loadavg_1m_before']} |"
            )
    c = s["cold_start"]
    b = s["embed_batches"]
    lines += [
        "",
        f"Cold start (process start → ready): `/healthz` {c['to_healthz_s']} s, `/readyz` {c['to_readyz_s']} s, "
        f"first answer {c['to_first_answer_s']} s. Idle server RSS {s['idle']['rss_mb']} MB "
        f"(PSS {s['idle']['pss_mb']} MB). Query embeddings were computed in {b['batches']} batches "
        f"for {b['questions']} questions (mean batch {b['mean_batch']}).",
        "",
        f"Index memory: {ix['disk_bytes_per_passage']} bytes per passage on disk (SQLite with text, FTS5 and "
        f"vectors + FAISS), of which FAISS {ix['faiss_bytes_per_passage']} bytes per passage "
        f"({ix['vector_bytes_per_passage']} for the float32 vector, the rest ids); "
        f"{ix['disk_bytes'] / 1e6:.1f} MB in all. The FAISS vectors are memory-mapped "
        "(`qa.store.map_faiss`, `IO_FLAG_MMAP_IFC`), so processes serving the same generation share one "
        "copy in the page cache (5 readers: 1.7 MB of RSS instead of 42 MB; added after this run). The server's memory is mostly the model "
        "(the float32 ONNX graph and ONNX Runtime's buffers; `onnx-int8` saves ~60 MB) plus jieba and "
        "OpenCC (~150 MB); the index adds ~1.5 KB per passage. torch is not loaded by the server.",
        "",
        "The last row asks the same 20 questions over and over: the query-embedding cache answers them, "
        "so it measures everything but the model (HTTP, auth, search, composition, logging).",
        "",
        "| target | measured | goal | met |",
        "|---|---:|---:|:---:|",
    ]
    for k, v in r["verdict"].items():
        lines.append(f"| {k} | {v['value']} | {v['target']} | {'yes' if v['ok'] else '**no**'} |")
    lines += ["", *NOTES, ""]
    return "\n".join(lines)


NOTES = [
    "Notes:",
    "",
    "* The clients run on the same 2 cores as the server: the 1-minute load average before each level "
    "is in the table (2.0 = both cores busy). At 64 clients the driver alone takes about half a core.",
    "* Where the time goes for one new question (idle machine, in-process timings): the query embedding "
    "~16 ms (ONNX Runtime float32; torch took 46 ms), search ~6 ms (FTS5 BM25, FAISS flat scan, window "
    "re-scoring), composition < 1 ms, HTTP ~3 ms. Nothing is loaded per request: model, index, jieba and "
    "OpenCC are loaded at start-up, and the warm-up answers one question before `/readyz` turns 200.",
    "* Questions that arrive together are embedded together (`api/batching.py`): a free embedding worker "
    "takes every question queued while it was busy, so a lone request never waits and 16 clients share a "
    "few forward passes. Search and composition run on a worker pool (`QA_WORKER_THREADS`, default "
    "2 x cores), never on the event loop.",
    "* Idle threads do not spin: ONNX Runtime's intra-op threads (`QA_ONNX_SPIN=false`) and FAISS's "
    "OpenMP team (the server searches single-threaded). Spinning threads took the cores other questions "
    "needed: 16 clients went from 51 to 59 QPS without ONNX Runtime spinning and to 65 QPS (p99 437 ms) "
    "with single-threaded FAISS too; one client pays ~5 ms for it.",
    "* Variants (same machine, same hour; bench/results/load-onnx-int8*.json): `QA_BACKEND=onnx-int8` "
    "77.1 QPS / p99 395 ms at 16 clients, single client p50 28.4 ms; with `QA_ONNX_SPIN=true` single "
    "client p50 23.3 ms but 16 clients p99 590 ms. Tried and rejected: fewer threads "
    "(`QA_WORKER_THREADS=2 QA_EMBED_WORKERS=1`): 47 QPS at 16 clients.",
    "* Beyond `QA_MAX_PENDING` questions in flight the server answers 503 with Retry-After instead of "
    "queueing without bound; none of the levels here reaches it. At 64 clients the queue is over a "
    "second deep and the tail grows to seconds (no errors): the machine is past its capacity.",
]


def update_readme(section: str, path: Path = README) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        end = len(text) if nxt < 0 else nxt + 1
        text = text[:start] + section.rstrip("\n") + "\n" + ("\n" + text[end:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default=str(DEFAULT_INDEX))
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--clients", default="1,4,16,64", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--duration", type=float, default=15.0, help="measured seconds per level")
    ap.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each level")
    ap.add_argument("--hot", type=int, default=16, help="clients for a last run with repeated questions (0 = skip)")
    ap.add_argument("--compare-unbatched", type=int, default=16,
                    help="then N clients against a server with micro-batching off (0 = skip)")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--readme", default=str(README), help="'' to leave bench/README.md alone")
    ap.add_argument("--tmp", default=str(Path(tempfile.gettempdir()) / "zh-qa-load"), help="server logs, question files")
    ap.add_argument("--render-only", action="store_true", help="only rewrite the README section from --out")
    ap.add_argument("--question-log-ab", type=int, default=0, metavar="ROUNDS",
                    help="only compare QA_QUESTION_LOG=off vs on, alternated ROUNDS times at --clients")
    # driver mode (internal)
    ap.add_argument("--drive", help=argparse.SUPPRESS)
    ap.add_argument("--drive-clients", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--questions-file", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.render_only:  # rewrite the README section from an existing results file
        update_readme(render_section(json.loads(Path(args.out).read_text(encoding="utf-8"))), Path(args.readme))
        print(f"updated {args.readme}")
        return

    if args.drive:
        questions = json.loads(Path(args.questions_file).read_text(encoding="utf-8"))
        res = asyncio.run(_drive(args.drive, args.drive_clients, args.duration, args.warmup, questions, args.start))
        print(json.dumps(res))
        return

    sys.path.insert(0, str(ROOT))
    result = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    if args.question_log_ab:
        print(json.dumps(result["summary"], indent=2))
        return
    if args.readme:
        update_readme(render_section(result), Path(args.readme))
        print(f"updated {args.readme}")
    for k, v in result["verdict"].items():
        print(f"  {k:<22} {v['value']!s:>8}  target {v['target']:<7} {'ok' if v['ok'] else 'MISSED'}")


if __name__ == "__main__":
    main()
