"""Stateless replicas on one Milvus, over real HTTP (uvicorn) and real gRPC (milvus-lite's
server on 127.0.0.1): two `qa serve` processes with no index files answer alike, a new
generation is switched in under a stream of questions without one failure, and a Milvus that
dies (or was never there) turns /readyz and /ask into 503s with the reason, not hangs."""

from __future__ import annotations

import shutil
import threading
import time

import httpx
import pytest

from tests.conftest import FIXTURES, free_port, spawn_server, start_server, stop_server, wait_ready
from tests.milvus_peer import MilvusLiteServer, milvus_env, milvus_settings, needs_milvus

pytestmark = [needs_milvus, pytest.mark.model, pytest.mark.server]  # milvus-lite and qa serve on 127.0.0.1
ALIAS = "http_qa"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from qa.ingest import ingest
    from qa.vectors.milvus import forget_clients

    work = tmp_path_factory.mktemp("milvus-http")
    shutil.copytree(FIXTURES / "corpus", work / "corpus")
    milvus = MilvusLiteServer(work / "milvus", free_port()).start()
    servers = []
    try:
        settings = milvus_settings(work / "index", milvus.uri, alias=ALIAS)
        ingest(work / "corpus", settings)
        env = milvus_env(milvus.uri, alias=ALIAS, milvus_timeout_s=2)
        # the replicas get an empty index folder: everything they serve comes from Milvus
        for i in range(2):  # started side by side: each loads the model on its own
            servers.append(spawn_server(work / f"replica-{i}", env_extra=env))
        for s in servers:
            wait_ready(s, ready_path="/readyz", timeout=300)
        yield work, milvus, settings, servers
    finally:
        for s in servers:
            stop_server(s)
        forget_clients()
        milvus.stop()


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=5).status_code == 200
    except httpx.TimeoutException:
        return False


def ask(url: str, q: str, **kw) -> httpx.Response:
    return httpx.post(url + "/ask", json={"question": q, **kw}, timeout=30)


def test_two_replicas_answer_from_one_milvus(setup):
    work, _, _, servers = setup
    answers = [ask(s.url, "Helm 怎么回滚一个 Release？").json() for s in servers]
    assert answers[0]["status"] == "answered" and answers[0]["answer"] == answers[1]["answer"]
    assert answers[0]["index"] == answers[1]["index"]
    assert "helm" in answers[0]["citations"][0]["path"].lower()
    ready = [httpx.get(s.url + "/readyz", timeout=10).json() for s in servers]
    assert ready[0]["generation"] == ready[1]["generation"] == answers[0]["index"]["generation"]
    stats = httpx.get(servers[0].url + "/stats", timeout=10).json()
    assert stats["chunks"] > 0 and {d["path"] for d in stats["documents_list"]} >= {"ops/helm-basics.md"}
    # no index files on a replica: at most its own state (conversations, question log)
    for i in range(2):
        local = work / f"replica-{i}"
        files = {p.name for p in local.rglob("*") if p.is_file()} if local.exists() else set()
        assert not any(n == "CURRENT" or n.endswith((".faiss", "qa.sqlite")) for n in files), files
        assert {n.split(".sqlite")[0] for n in files} <= {"conversations", "questions"}, files


def test_a_new_generation_is_switched_in_under_a_stream_of_questions(setup):
    from qa.ingest import ingest

    work, _, settings, servers = setup
    before = ask(servers[0].url, "kubectl 怎么查看日志？").json()["index"]["generation"]
    stop = threading.Event()
    results: list[tuple[int, str | None]] = []

    def client(url: str) -> None:
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                r = c.post(url + "/ask", json={"question": "kubectl 怎么查看日志？"})
                results.append((r.status_code, r.json().get("index", {}).get("generation") if r.status_code == 200 else r.text))

    threads = [threading.Thread(target=client, args=(s.url,)) for s in servers for _ in range(2)]
    for t in threads:
        t.start()
    try:
        f = work / "corpus" / "ops" / "helm-basics.md"
        f.write_text(f.read_text(encoding="utf-8") + "\n\n## 卸载\n\n卸载使用 helm uninstall。\n", encoding="utf-8")
        report = ingest(work / "corpus", settings)
        assert report.vector_store["published"]
        deadline = time.time() + 30
        while time.time() < deadline and not any(g not in (before,) for _, g in results[-8:]):
            time.sleep(0.2)
        time.sleep(1.0)  # a few more questions on the new generation
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:3]
    gens = [g for _, g in results]
    assert before in gens and any(g != before for g in gens)
    # both replicas moved on
    for s in servers:
        assert ask(s.url, "helm uninstall 做什么？").json()["index"]["generation"] != before


def test_milvus_unreachable_at_start_up_is_a_503_then_ready_once_it_answers(tmp_path, setup):
    from qa.vectors.milvus import local_generation_dir, publish_to_milvus

    work, _, settings, _ = setup
    port = free_port()
    env = milvus_env(f"http://127.0.0.1:{port}", alias=ALIAS, milvus_timeout_s=2)
    srv = start_server(tmp_path / "index", env_extra=env, ready_path="/healthz", timeout=300)
    late = None
    try:
        deadline = time.time() + 30
        while True:  # the first /readyz starts loading in the background
            r = httpx.get(srv.url + "/readyz", timeout=15)
            assert r.status_code == 503
            if "Milvus" in (r.json().get("reason") or "") or time.time() > deadline:
                break
            time.sleep(0.3)
        assert f"Milvus at http://127.0.0.1:{port} is unavailable" in r.json()["reason"]
        a = ask(srv.url, "kubectl 是什么？")
        assert a.status_code == 503 and a.json()["error"]["code"] == "store_unavailable"
        assert "Milvus" in a.json()["error"]["message"]
        # Milvus comes up and gets a generation: the server becomes ready by itself, no restart
        late = MilvusLiteServer(tmp_path / "late-milvus", port).start()
        publish_to_milvus(local_generation_dir(work / "index"), settings.model_copy(update={"milvus_uri": late.uri}))
        deadline = time.time() + 300
        while not ready(srv.url):  # loading the model now: a slow answer while it loads is no failure
            assert time.time() < deadline, "not ready after Milvus came up"
            time.sleep(0.5)
        assert ask(srv.url, "Helm 是什么？").json()["status"] == "answered"
    finally:
        stop_server(srv)
        if late is not None:
            late.stop()


def test_milvus_going_away_turns_readyz_and_ask_into_503s(setup):
    """Last in this module: it kills the shared Milvus."""
    _, milvus, _, servers = setup
    assert ask(servers[0].url, "Helm 是什么？").status_code == 200
    milvus.kill()
    r = httpx.get(servers[0].url + "/readyz", timeout=15)
    assert r.status_code == 503 and "Milvus" in r.json()["reason"]
    for s in servers:
        a = ask(s.url, "Helm 是什么？")
        assert a.status_code == 503, a.text
        assert a.json()["error"]["code"] == "store_unavailable" and "unavailable" in a.json()["error"]["message"]
        assert a.headers.get("retry-after")
    # liveness stays green (restarting the pod would not bring Milvus back) and metrics still scrape
    assert httpx.get(servers[0].url + "/healthz", timeout=10).status_code == 200
    m = httpx.get(servers[0].url + "/metrics", timeout=10)
    assert m.status_code == 200 and "qa_index_passages" in m.text
