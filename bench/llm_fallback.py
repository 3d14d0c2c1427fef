"""How long an answer takes when the LLM endpoint hangs, is down, or works (scripted server).

    PYTHONPATH=$PWD python bench/llm_fallback.py --index /tmp/idx [--n 10] [--timeout 1.0]

Against the scripted chat-completions server of tests/fake_llm.py on 127.0.0.1, in one
process and one run: the extractive answer (no LLM configured: the baseline), an endpoint
that never answers (fallback after QA_LLM_TIMEOUT_S), a closed port (connection refused), and
an endpoint that answers at once (prompt + verification overhead). Target (issue 17): the
hang case within timeout + 200 ms. Writes bench/results/llm_fallback.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.assistant import Assistant  # noqa: E402
from qa.config import Settings  # noqa: E402
from tests.fake_llm import FakeLLM, Reply  # noqa: E402

QUESTIONS = ["缓存默认多久过期？", "Helm 怎么回滚？", "k8s 和 Docker 是什么关系？", "kubectl uncordon 是做什么的？"]


def timed(bot: Assistant, n: int) -> tuple[list[float], list]:
    ms, answers = [], []
    for i in range(n):
        q = QUESTIONS[i % len(QUESTIONS)]
        t0 = time.perf_counter()
        answers.append(bot.ask(q))
        ms.append((time.perf_counter() - t0) * 1000)
    return ms, answers


def summary(ms: list[float], answers: list) -> dict:
    return {
        "n": len(ms), "p50_ms": round(statistics.median(ms), 1), "max_ms": round(max(ms), 1),
        "writers": sorted({a.writer for a in answers}),
        "fallback_reasons": sorted({a.writer_fallback_reason or "-" for a in answers}),
        "failed": sum(1 for a in answers if not a.answer),
        "llm_call_p50_ms": (round(statistics.median(x), 1) if (x := [a.timings.llm_ms for a in answers
                                                                    if a.timings.llm_ms is not None]) else None),
    }


def writer_off_overhead(bot: Assistant, n: int) -> dict:
    """The seam with no LLM configured vs. what Assistant.ask did before it (retrieve, then
    qa.answer.compose directly), interleaved in one process so machine noise hits both alike."""
    from qa.answer import compose
    from qa.retrieval import make_query

    def before(q: str) -> str:
        hits, _ = bot.retrieve(q)
        usable = [h.confidence >= bot.settings.min_confidence / 2 for h in hits]
        return compose(make_query(q), hits, budget=bot.settings.answer_chars, usable=usable)[0]

    seam, direct, same = [], [], 0
    for i in range(n):
        q = QUESTIONS[i % len(QUESTIONS)]
        t0 = time.perf_counter()
        a = bot.ask(q).answer
        t1 = time.perf_counter()
        b = before(q)
        t2 = time.perf_counter()
        seam.append((t1 - t0) * 1000)
        direct.append((t2 - t1) * 1000)
        same += a == b
    return {"n": n, "seam_p50_ms": round(statistics.median(seam), 2), "direct_compose_p50_ms":
            round(statistics.median(direct), 2), "ratio": round(statistics.median(seam) / statistics.median(direct), 3),
            "identical_answers": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True, help="an index built with `qa ingest tests/fixtures/corpus`")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "llm_fallback.json")
    args = ap.parse_args()
    base = Settings(index_dir=args.index)
    plain = Assistant.open(args.index, settings=base)
    timed(plain, 4)  # warm
    results = {"extractive_baseline": summary(*timed(plain, args.n))}
    off = writer_off_overhead(plain, max(40, args.n * 5))

    hang = FakeLLM(lambda body: Reply("迟到[1]。", delay_s=args.timeout + 5))
    ok = FakeLLM(None)

    def answer_from_passage(body):
        from tests.test_writers import cited

        for needle in ("30 分钟", "helm rollback", "容器", "uncordon"):
            try:
                return Reply(cited(body, needle))
            except AssertionError:
                continue
        return Reply("无法回答[1]。")

    ok.script = answer_from_passage
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down_url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    for name, url in (("endpoint_hangs", hang.url), ("endpoint_down", down_url), ("endpoint_answers", ok.url)):
        settings = base.model_copy(update={"llm_base_url": url, "llm_model": "bench", "llm_timeout_s": args.timeout})
        bot = Assistant(args.index, settings)
        ms, answers = timed(bot, args.n)
        results[name] = summary(ms, answers)
        bot.writer.close()
    hang.close()
    ok.close()
    over = results["endpoint_hangs"]["max_ms"] - args.timeout * 1000
    report = {
        "what": "answer latency with the LLM writer failing or working, scripted endpoint on 127.0.0.1",
        "timeout_s": args.timeout,
        "results": results,
        "writer_off_vs_before": off,
        "hang_max_over_timeout_ms": round(over, 1),
        "target": "hang: max <= timeout + 200 ms; down: 0 failed answers",
        "met": over <= 200 and results["endpoint_down"]["failed"] == 0,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other developers (timings noisy)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
