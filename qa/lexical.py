"""Lexical units for Chinese technical text: what BM25 matches on.

Chinese has no spaces, so passages and questions are cut into overlapping
character bigrams (as Lucene's CJK analyzer does: on CMRC dev they beat jieba
words for retrieval).  Latin words, identifiers, version numbers and commands
(``kubectl``, ``1.28``, ``apt-get``) are kept whole, and also split into their
parts so ``kube-proxy`` matches ``proxy``.  Text is folded first: full-width to
half-width (NFKC), lower case, Traditional to Simplified (OpenCC), so a DRCD
question in Traditional characters meets a Simplified passage and vice versa.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
TOKEN_RE = re.compile(rf"[{CJK}]+|[a-z0-9_]+(?:[.\-+#/:][a-z0-9_]+)*[+#]*")
PART_RE = re.compile(r"[a-z0-9]+")
# Characters our tokens may contain besides letters and digits; the FTS5
# tokenizer is told to keep them inside tokens.
TOKEN_CHARS = "_.-+#/:"

_local = threading.local()


def _converter():
    conv = getattr(_local, "opencc", None)
    if conv is None:
        import opencc

        conv = _local.opencc = opencc.OpenCC("t2s")
    return conv


def fold(text: str) -> str:
    """Width, case and script folding used for matching (never for display)."""
    text = unicodedata.normalize("NFKC", text).lower()
    if re.search(f"[{CJK}]", text):
        text = _converter().convert(text)
    return text


def tokens(text: str, folded: bool = False) -> list[str]:
    """Bigrams for CJK runs (a lone character stays a unigram); whole and split
    Latin identifiers."""
    if not folded:
        text = fold(text)
    out: list[str] = []
    for m in TOKEN_RE.finditer(text):
        t = m.group()
        c = t[0]
        if "\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff":
            if len(t) == 1:
                out.append(t)
            else:
                out.extend(t[i : i + 2] for i in range(len(t) - 1))
        else:
            out.append(t)
            parts = PART_RE.findall(t)
            if len(parts) > 1:
                out.extend(parts)
    return out


@lru_cache(maxsize=4096)
def query_tokens(text: str) -> tuple[str, ...]:
    """Distinct tokens of a question, in first-seen order (cached: questions repeat)."""
    return tuple(dict.fromkeys(tokens(text)))


def fts_document(text: str) -> str:
    """The pre-tokenised form stored in SQLite FTS5 (space separated)."""
    return " ".join(tokens(text))


def fts_query(toks: tuple[str, ...] | list[str]) -> str:
    """An FTS5 OR-query over the tokens; each is quoted so FTS syntax in user
    input (AND, NEAR, quotes, *) is matched literally, never interpreted."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in toks)
