"""The service over real HTTP (one uvicorn process for the module): concurrency and batching,
slow and huge uploads, and live index updates under a stream of requests.

The server serves a private copy of the test index, so the live-update test can publish new
generations into it without disturbing other modules; it runs last in this file.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import make_settings, start_server, stop_server

pytestmark = [pytest.mark.model, pytest.mark.server]

KEY = "http-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
NEW_ARTICLE = """# 夜间巡检机器人

夜间巡检机器人的名字叫猫头鹰（owlbot）。猫头鹰每天凌晨两点检查所有集群的证书有效期，
并把三十天内即将过期的证书列表发到运维值班群。
"""
NEW_QUESTION = "猫头鹰巡检机器人每天几点检查证书？"
OLD_QUESTIONS = ["k8s 和 Docker 是什么关系？", "Helm 怎么回滚？", "集群升级到了哪个版本？", "Redis 缓存的过期时间是多少？"]


@pytest.fixture(scope="module")
def live(tmp_path_factory, built_index, corpus_dir):
    root = tmp_path_factory.mktemp("live")
    index, corpus = root / "index", root / "corpus"
    shutil.copytree(built_index, index)
    shutil.copytree(corpus_dir, corpus)
    srv = start_server(index, {"QA_API_KEYS": KEY, "QA_BODY_TIMEOUT_S": "3"}, ready_path="/readyz")
    srv.index, srv.corpus = index, corpus
    yield srv
    stop_server(srv)


def _ask(url: str, q: str, client: httpx.Client | None = None) -> httpx.Response:
    return (client or httpx).post(url + "/ask", json={"question": q, "top_k": 3}, headers=AUTH, timeout=60)


def test_concurrent_questions_are_all_answered_and_share_embeddings(live):
    qs = [f"{q} ({i})" for i, q in enumerate(OLD_QUESTIONS * 4)]  # 16 distinct questions: no cache hits
    barrier = threading.Barrier(len(qs))
    results: dict[str, httpx.Response] = {}

    def one(q):
        barrier.wait()
        results[q] = _ask(live.url, q)

    threads = [threading.Thread(target=one, args=(q,)) for q in qs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in results.values()), [r.text for r in results.values() if r.status_code != 200]
    assert all(r.json()["question"] == q for q, r in results.items())
    metrics = httpx.get(live.url + "/metrics").text
    count = float(next(ln.split()[-1] for ln in metrics.splitlines() if ln.startswith("qa_embed_batch_size_count")))
    total = float(next(ln.split()[-1] for ln in metrics.splitlines() if ln.startswith("qa_embed_batch_size_sum")))
    assert total > count  # at least one forward pass embedded several questions


def _raw(url: str) -> socket.socket:
    u = urlparse(url)
    return socket.create_connection((u.hostname, u.port), timeout=15)


def _status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_slow_uploads_do_not_starve_other_clients_and_time_out(live):
    slow = []
    for _ in range(20):  # twenty clients that announce a body and then send it very slowly
        s = _raw(live.url)
        s.sendall(
            b"POST /ask HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {KEY}\r\nContent-Length: 4000\r\n\r\n".encode() + b'{"question": "'
        )
        slow.append(s)
    with httpx.Client() as c:
        answers = [_ask(live.url, q, c) for q in OLD_QUESTIONS]
    assert all(r.status_code == 200 for r in answers)
    for s in slow:  # the others were answered while every slow upload was still pending...
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.recv(1)
        s.setblocking(True)
    for s in slow:  # ...which then time out (QA_BODY_TIMEOUT_S=3 for this server)
        assert _status(s) == 408
        s.close()


def test_huge_uploads_are_refused_before_they_are_read(live):
    r = httpx.post(live.url + "/ask", content=b"{" + b" " * 5_000_000 + b"}", headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def stream():
        for _ in range(200):
            yield b" " * 1024

    r = httpx.post(live.url + "/ask", content=stream(), headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert _ask(live.url, "Helm 怎么回滚？").status_code == 200


def test_request_id_round_trips_over_http(live):
    r = _ask(live.url, "Helm 怎么回滚？")
    assert len(r.headers["x-request-id"]) == 32
    r = httpx.get(live.url + "/healthz", headers={"X-Request-ID": "probe-7"})
    assert r.headers["x-request-id"] == "probe-7"


def _cites_new_article(body: dict) -> bool:
    return not body["abstained"] and any("owlbot" in c["path"] for c in body["citations"])


def _ingest(live) -> str:
    from qa.ingest import ingest

    report = ingest(live.corpus, make_settings(live.index))
    assert report.published
    return (live.index / "CURRENT").read_text().strip()


def test_ingest_swaps_the_index_live_without_a_failed_request(live):
    """Last in the module: it changes the served index."""
    before = _ask(live.url, NEW_QUESTION).json()
    assert not _cites_new_article(before)
    old_gen = before["index"]["generation"]

    stop = threading.Event()
    seen: list[tuple[int, str | None, str]] = []  # (status, generation, question)
    failures: list[str] = []

    def client(i: int) -> None:
        with httpx.Client() as c:
            n = 0
            while not stop.is_set():
                q = (OLD_QUESTIONS + [NEW_QUESTION])[(i + n) % 5]
                n += 1
                try:
                    r = _ask(live.url, q, c)
                except httpx.HTTPError as exc:
                    failures.append(f"{q}: {exc!r}")
                    continue
                if r.status_code != 200:
                    failures.append(f"{q}: {r.status_code} {r.text[:200]}")
                else:
                    seen.append((r.status_code, r.json()["index"]["generation"], q))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        (live.corpus / "owlbot.md").write_text(NEW_ARTICLE, encoding="utf-8")
        new_gen = _ingest(live)  # publishes while the clients keep asking
        assert new_gen != old_gen
        deadline = time.time() + 20
        while time.time() < deadline and not any(g == new_gen for _, g, _ in seen):
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()

    assert not failures, failures[:5]
    gens = [g for _, g, _ in seen]
    assert old_gen in gens and new_gen in gens  # answered from both, switched without a restart
    assert gens.index(new_gen) > 0 and gens[-1] == new_gen  # once switched, it stays switched
    after = _ask(live.url, NEW_QUESTION).json()
    assert after["index"]["generation"] == new_gen and _cites_new_article(after), after
    ready = httpx.get(live.url + "/readyz").json()
    assert ready["ready"] and ready["generation"] == new_gen
    metrics = httpx.get(live.url + "/metrics").text
    assert f"qa_index_generation {float(new_gen.split('-')[1])}" in metrics
    assert "qa_index_swaps_total 1.0" in metrics

    # a second swap (the article removed) also reaches the server; the first generation is pruned
    (live.corpus / "owlbot.md").unlink()
    third = _ingest(live)
    deadline = time.time() + 10
    while time.time() < deadline:
        body = _ask(live.url, NEW_QUESTION).json()
        if body["index"]["generation"] == third:
            break
        time.sleep(0.1)
    assert body["index"]["generation"] == third and not _cites_new_article(body)
    assert not (live.index / old_gen).exists()
    for q in OLD_QUESTIONS:
        assert _ask(live.url, q).status_code == 200


def test_the_index_copy_is_independent(live, built_index):
    assert (built_index / "CURRENT").read_text() != (live.index / "CURRENT").read_text()
    assert Path(built_index).exists()
