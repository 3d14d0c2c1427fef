"""What api.server.HttpProtocol (header size/time limits, proxy trust) costs per request.

Two real uvicorn servers on 127.0.0.1 serving the same app, one with uvicorn's httptools protocol
(the baseline), one with ``--http api.server:HttpProtocol``; ``GET /healthz`` (no index, no model)
sent sequentially, on one kept-alive connection and with a new connection per request, in
interleaved rounds; the best round of each is kept. Writes bench/results/protocol.json.

    .venv/bin/python bench/protocol.py [--requests 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(extra: list[str], index: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "QA_INDEX_DIR": index, "QA_ACCESS_LOG": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", *extra],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def run(url: str, n: int, keep_alive: bool) -> list[float]:
    times = []
    if keep_alive:
        with httpx.Client() as c:
            for _ in range(n):
                t = time.perf_counter()
                c.get(url + "/healthz")
                times.append(time.perf_counter() - t)
    else:
        for _ in range(n):
            t = time.perf_counter()
            with httpx.Client() as c:
                c.get(url + "/healthz")
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    configs = {"httptools (baseline)": [], "api.server:HttpProtocol": ["--http", "api.server:HttpProtocol"]}
    with tempfile.TemporaryDirectory() as empty_index:
        servers = {name: start(extra, empty_index) for name, extra in configs.items()}
        try:
            best: dict[str, dict[str, float]] = {name: {} for name in configs}
            for _ in range(args.rounds):
                for mode in ("keep_alive", "new_connection"):
                    for name, (_, url) in servers.items():
                        t = run(url, args.requests, mode == "keep_alive")
                        p50 = statistics.median(t) * 1000
                        if p50 < best[name].get(mode + "_p50_ms", float("inf")):
                            best[name][mode + "_p50_ms"] = round(p50, 3)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(10)
    base, ours = best["httptools (baseline)"], best["api.server:HttpProtocol"]
    result = {
        "what": "GET /healthz p50 per request, best of interleaved rounds",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; shared with other "
                   "developers while measured (noisy: compare the ratios, measured in the same run)",
        "requests_per_round": args.requests, "rounds": args.rounds, "results": best,
        "ratio_ours_over_baseline": {m: round(ours[m] / base[m], 3) for m in base},
    }
    out = ROOT / "bench" / "results" / "protocol.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
