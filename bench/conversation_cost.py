"""What a conversation costs a standalone question: ``ask(q)`` vs ``ask(q, conversation=True)``.

Alternates the two (ABBA) on the same questions in one process (so machine load hits both alike) and
reports p50/p95 of each and of the two extra steps (finding the conversation and resolving the
question; writing the turn to SQLite). Writes bench/results/conversation_cost.json.

    python bench/conversation_cost.py --index bench/.index-zhtech --rounds 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["Redis 缓存默认多久过期？", "k8s 和 Docker 是什么关系？", "Helm 怎么回滚？", "什么是容器镜像？",
             "kubectl uncordon 是做什么的？", "什么是服务网格？", "Pod 是什么？", "DaemonSet 有哪些典型用法？"]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] * 1000, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "conversation_cost.json"))
    args = ap.parse_args()

    from qa.assistant import Assistant
    from qa.config import Settings
    from qa.followup import Turn

    with tempfile.TemporaryDirectory() as tmp:  # never write beside a shared, read-only index
        settings = Settings(index_dir=args.index, conversations_db=Path(tmp) / "c.sqlite")
        bot = Assistant.open(args.index, settings=settings)
        for q in QUESTIONS:  # warm caches for both paths alike
            bot.ask(q)
            bot.ask(q, conversation=True)
        plain, conv, begin, write = [], [], [], []
        for i in range(args.rounds):
            q = QUESTIONS[i % len(QUESTIONS)]
            # ABBA order: neither path always runs first (caches, scheduler) on a busy machine
            for kind in (("plain", "conv") if i % 2 == 0 else ("conv", "plain")):
                t = time.perf_counter()
                bot.ask(q, conversation=True if kind == "conv" else None)
                (conv if kind == "conv" else plain).append(time.perf_counter() - t)
            t = time.perf_counter()
            turn = bot.begin(q, True)
            t2 = time.perf_counter()
            bot.conversations.add_turn(turn.opened.id, Turn(q))
            begin.append(t2 - t)
            write.append(time.perf_counter() - t2)
    result = {
        "index": args.index, "rounds": args.rounds,
        "ask_ms": {"p50": pct(plain, 0.5), "p95": pct(plain, 0.95)},
        "ask_in_new_conversation_ms": {"p50": pct(conv, 0.5), "p95": pct(conv, 0.95)},
        "begin_ms (find conversation + resolve)": {"p50": pct(begin, 0.5), "p95": pct(begin, 0.95)},
        "add_turn_ms (SQLite write)": {"p50": pct(write, 0.5), "p95": pct(write, 0.95)},
        "p50_ratio": round(statistics.median(conv) / statistics.median(plain), 3),
        "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2),
                    "note": "shared development machine (2 cores, several developers): compare the ratio, not the ms"},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
