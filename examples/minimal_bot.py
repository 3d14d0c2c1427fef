"""A minimal custom chat bot on the embedding API (qa.chat).

It reads one message per line from stdin — stand-in for whatever your chat platform delivers —
and prints the reply the bot would post. Replace ``read_messages``/``post`` with your
platform's client; the three lines in ``main`` stay the same.

    qa ingest corpus/                      # build index/ once
    python examples/minimal_bot.py --index index/
    > @bot Redis 缓存默认多久过期？

Options: ``--dialect`` picks the markup and size limit (markdown, text, slack, feishu,
dingtalk, wecom); ``--json`` prints the whole pydantic Answer instead of the rendered text.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from qa.chat import DIALECTS, Chat
from qa.config import Settings


def read_messages() -> Iterator[str]:
    for line in sys.stdin:
        if line.strip():
            yield line


def post(text: str) -> None:
    print(text, end="\n\n", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", default="index", help="index folder built by `qa ingest`")
    ap.add_argument("--dialect", default="markdown", choices=sorted(DIALECTS))
    ap.add_argument("--json", action="store_true", help="print the Answer model as JSON")
    args = ap.parse_args(argv)

    chat = Chat.open(args.index, Settings(index_dir=args.index))  # once: loads index and model
    dialect = DIALECTS[args.dialect]

    def handle(message: str) -> str:
        reply = chat.reply(message, dialect)  # never raises; reply.text fits dialect.limit
        if args.json:
            return reply.answer.model_dump_json(indent=2) if reply.answer else reply.model_dump_json(indent=2)
        return reply.text

    # Chat is thread-safe: a real bot answers messages concurrently, as here.
    with ThreadPoolExecutor(max_workers=4) as pool:
        for text in pool.map(handle, read_messages()):
            post(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
