"""Ingest as a long-running product job (issue 13): token-budgeted batches, progress on a pipe,
resume after SIGKILL from the embedding cache, every file reported.  Real model, real SQLite,
the real `qa` CLI in a subprocess with its output piped (as in a Kubernetes Job or CI)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qa.check import check_index
from qa.encoder import token_batches
from qa.ingest import ingest
from tests.conftest import FIXTURES, ROOT, isolated_cache, make_settings

pytestmark = [pytest.mark.model]  # real ingests, subprocesses and a real qa serve


def run_cli(*args: str, env_extra: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "qa.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_token_batches_respect_count_and_token_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 513, size=200)
    batches = token_batches(lengths, batch_size=32, max_tokens=4096)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(200))  # every row exactly once
    for b in batches:
        assert len(b) <= 32
        assert len(b) * lengths[b].max() <= 4096 or len(b) == 1
    assert [int(lengths[b[0]]) for b in batches] == sorted((int(lengths[b[0]]) for b in batches), reverse=True)
    assert len(token_batches(lengths, 32, 0)) == 7  # 0: by count only


def test_token_budget_gives_the_same_vectors(tmp_path):
    """Batching by tokens trims each batch's padding: the vectors must not change."""
    from qa.embeddings import Embedder

    texts = ["短句。", "Kubernetes 的 Pod 是最小的调度单位。" * 20, "Helm Chart", "容器镜像" * 150, "服务发现与负载均衡。" * 5]
    by_count = Embedder("default", make_settings(tmp_path, embed_max_tokens=0)).encode_passages(texts)
    budget = Embedder("default", make_settings(tmp_path, embed_max_tokens=600, batch_size=3)).encode_passages(texts)
    assert (by_count * budget).sum(1).min() > 0.9999


def test_progress_on_a_pipe_and_json_on_stdout(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURES / "corpus", corpus)
    cache = isolated_cache(tmp_path)
    proc = run_cli("ingest", str(corpus), "--index", str(tmp_path / "index"), "--json",
                   env_extra={"QA_CACHE_DIR": str(cache), "QA_BATCH_SIZE": "4"})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # stdout stays machine-readable: progress went to stderr
    assert report["published"] and report["chunks_embedded"] > 4
    lines = proc.stderr.splitlines()
    assert any(re.fullmatch(r"ingest: reading files \d+/4 \(\d+%\)", ln) for ln in lines), proc.stderr
    embedding = [ln for ln in lines if ln.startswith("ingest: embedding")]
    assert len(embedding) >= 2, proc.stderr
    total = report["chunks_embedded"]
    assert re.fullmatch(rf"ingest: embedding 0/{total} passages \(0%\), 4 files, 0\.0 passages/s", embedding[0])
    last = re.fullmatch(rf"ingest: embedding (\d+)/{total} passages \((\d+)%\), 4 files, ([\d.]+) passages/s.*", embedding[-1])
    assert last and int(last[1]) == total and last[2] == "100" and float(last[3]) > 0
    assert any(", ETA " in ln for ln in embedding[1:])


def test_sigkill_mid_embedding_resumes_from_the_cache(tmp_path):
    """Vectors reach the cache while the run is embedding; a run killed half-way and started
    again embeds only the passages the first one did not finish."""
    n = 200  # enough that a fast machine is still embedding when the first rows are seen
    corpus = tmp_path / "corpus"
    for i in range(n):
        p = corpus / f"d{i // 10}" / f"note-{i:03d}.md"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"# 笔记 {i}\n\n第 {i} 号集群的节点 node-{i} 运行 {i * 3} 个 Pod，版本 v1.{i}。\n", encoding="utf-8")
    cache = isolated_cache(tmp_path)
    index = tmp_path / "index"
    # one passage per batch, committed after every batch: the first row shows up long before the end
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QA_CACHE_DIR": str(cache), "QA_BATCH_SIZE": "1",
           "QA_CACHE_FLUSH_SECONDS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "ingest", str(corpus), "--index", str(index), "--json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    db = cache / "embeddings.sqlite"
    cached_at_kill = 0
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
                    cached_at_kill = c.execute("SELECT count(*) FROM vectors").fetchone()[0]
            except sqlite3.Error:
                cached_at_kill = 0
            if cached_at_kill:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.005)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "the first run finished before the cache had rows"
    assert 0 < cached_at_kill < n
    assert not (index / "CURRENT").exists()  # nothing was published by the killed run

    report = ingest(corpus, make_settings(index, cache_dir=cache))
    assert report.published and report.chunks_total == n
    assert report.chunks_cached >= cached_at_kill  # the killed run's vectors were kept
    assert report.chunks_embedded == n - report.chunks_cached < n
    assert check_index(index)["ok"]
    assert not list(index.glob("gen-*.tmp*"))


def test_every_file_is_indexed_or_skipped_with_a_reason(tmp_path):
    root = tmp_path / "corpus"
    (root / ".github").mkdir(parents=True)
    (root / ".github" / "CONTRIBUTING.md").write_text("# 贡献\n\n欢迎提交 PR。\n", encoding="utf-8")
    (root / ".github" / "workflow.yml").write_text("on: push\n", encoding="utf-8")
    (root / ".draft.md").write_text("# 草稿\n", encoding="utf-8")
    (root / "img").mkdir()
    (root / "img" / "arch.png").write_bytes(b"\x89PNG\r\n")
    (root / "LICENSE").write_text("MIT\n", encoding="utf-8")
    with open(root / "dump.md", "wb") as fh:  # sparse: over the size limit without writing 20 MiB
        fh.truncate(21 * 1024 * 1024)
    outside = tmp_path / "outside.md"
    outside.write_text("# 外部\n", encoding="utf-8")
    (root / "link.md").symlink_to(outside)
    (root / "guide.md").write_text("# 指南\n\n部署前先检查集群版本。\n", encoding="utf-8")
    cache = isolated_cache(tmp_path)
    env = {"QA_CACHE_DIR": str(cache)}
    index = str(tmp_path / "index")

    proc = run_cli("ingest", str(root), "--index", index, "--json", "--follow-symlinks", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["indexed"] == ["guide.md"]
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert reasons == {
        ".github/": "hidden folder (2 files not read)",
        ".draft.md": "hidden file",
        "LICENSE": "unsupported file type (no extension)",
        "dump.md": f"file too large ({21 * 1024 * 1024} bytes > {20 * 1024 * 1024})",
        "img/arch.png": "unsupported file type (.png)",
        "link.md": "symlink target outside the corpus root",
    }
    on_disk = sum(1 for p in root.rglob("*") if p.is_file() or p.is_symlink())
    assert report["files_skipped"] + len(report["indexed"]) == on_disk == 8

    # the text report: counts always, the list with --verbose
    (root / "guide.md").write_text("# 指南\n\n部署前先检查集群版本和节点数。\n", encoding="utf-8")
    proc = run_cli("ingest", str(root), "--index", index, "--follow-symlinks", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    assert "8 under the root: 1 indexed" in proc.stdout and "7 skipped" in proc.stdout
    assert "2 unsupported file type" in proc.stdout and ".github/" not in proc.stdout
    proc = run_cli("ingest", str(root), "--index", index, "--follow-symlinks", "--verbose", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    for path, reason in reasons.items():
        assert f"skipped {path}: {reason}" in proc.stdout


@pytest.fixture()
def small_index(tmp_path) -> Path:
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURES / "corpus", corpus)
    index = tmp_path / "index"
    assert ingest(corpus, make_settings(index)).published
    return index


def test_ask_goes_to_a_running_server(small_index):
    """QA_SERVER_URL: the CLI sends the question to a running server (tests/conftest.py)."""
    from tests.conftest import start_server, stop_server

    server = start_server(small_index, timeout=300)  # the shared 2-core machine can take minutes
    try:
        proc = run_cli("ask", "Helm 是什么？", "--index", str(small_index), "--json", "--verbose",
                       env_extra={"QA_SERVER_URL": server.url})
        assert proc.returncode == 0, proc.stderr
        assert f"answered by the server at {server.url}" in proc.stderr
        answer = json.loads(proc.stdout)
        assert answer["citations"] and answer["citations"][0]["kind"] in ("text", "code", "table", "diagram")
        # a bad question is the server's 422, reported as the CLI's usual error
        proc = run_cli("ask", "   ", "--index", str(small_index), env_extra={"QA_SERVER_URL": server.url})
        assert proc.returncode == 2 and "empty" in proc.stderr, proc.stderr
    finally:
        stop_server(server)


def test_qa_serve_is_found_through_its_server_file_and_stale_files_are_ignored(small_index):
    from tests.conftest import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("QA_SERVER_URL", None)
    srv = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--index", str(small_index), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        info_path = small_index / "server.json"
        import httpx

        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if info_path.exists() and httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        info = json.loads(info_path.read_text())
        assert info["pid"] == srv.pid and info["url"] == f"http://127.0.0.1:{port}"
        proc = run_cli("ask", "Helm 是什么？", "--index", str(small_index), "--json", "--verbose")
        assert proc.returncode == 0, proc.stderr
        assert f"answered by the server at http://127.0.0.1:{port}" in proc.stderr
        assert json.loads(proc.stdout)["citations"]
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(30)
    assert not (small_index / "server.json").exists()  # removed when the server stops

    # a file left by a killed server: its pid is gone, so the question is answered here
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (small_index / "server.json").write_text(json.dumps({"pid": dead.pid, "url": f"http://127.0.0.1:{port}"}))
    proc = run_cli("ask", "Helm 是什么？", "--index", str(small_index), "--json", "--verbose")
    assert proc.returncode == 0, proc.stderr
    assert f"process {dead.pid} is not running" in proc.stderr and "loading the index here" in proc.stderr
    assert json.loads(proc.stdout)["citations"]
