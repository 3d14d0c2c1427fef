"""Our lexical tokens in a form every Milvus analyzer keeps whole.

``qa.lexical`` makes bigrams (``容器``) and identifier tokens (``kubectl``, ``1.28``,
``kube-proxy``).  Milvus computes BM25 from the terms *its* analyzer produces, and the
analyzers disagree with us: the ``chinese`` one drops every token holding a non-Chinese
character, the ``standard`` one splits ``1.28`` and ``kube-proxy`` at the punctuation and
(on the server) Chinese into single characters; milvus-lite's ``standard`` is ``\\w+``.
So each token is rewritten, deterministically and reversibly, into lower-case ASCII letters
and digits only, and the encoded tokens are stored space-joined: whitespace, ``\\w+`` and
Unicode word segmentation all cut that string into exactly our tokens, and the query
side encodes the question's tokens the same way.

* identifier tokens (first character ``[a-z0-9_]``): ``l`` + the token with ``z`` and the
  punctuation escaped (``z``→``zz``, ``_``→``za``, ``.``→``zb``, ``-``→``zc``, ``+``→``zd``,
  ``#``→``ze``, ``/``→``zf``, ``:``→``zg``): ``kubectl``→``lkubectl``, ``1.28``→``l1zb28``;
* anything else (CJK): ``c`` + four base-36 digits per character: ``容器``→``c...``.

The first letter names the class and each class is a prefix code, so two different
tokens never meet in one encoded term.
"""

from __future__ import annotations

from typing import Iterable

VERSION = "lexcodec-v1"  # stored with every Milvus collection; readers refuse another
_ESCAPE = {"z": "zz", "_": "za", ".": "zb", "-": "zc", "+": "zd", "#": "ze", "/": "zf", ":": "zg"}
_UNESCAPE = {v[1]: k for k, v in _ESCAPE.items()}
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_LATIN_START = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def _b36(cp: int) -> str:
    return _B36[cp // 46656 % 36] + _B36[cp // 1296 % 36] + _B36[cp // 36 % 36] + _B36[cp % 36]


def encode(token: str) -> str:
    if token[0] in _LATIN_START:
        out = []
        for ch in token:
            if "a" <= ch <= "y" or "0" <= ch <= "9":
                out.append(ch)
            elif ch in _ESCAPE:
                out.append(_ESCAPE[ch])
            else:  # not produced by qa.lexical today; kept reversible anyway
                out.append("zx" + _b36(ord(ch)))
        return "l" + "".join(out)
    return "c" + "".join(_b36(ord(ch)) for ch in token)


def decode(term: str) -> str:
    """The token an encoded term came from (for debugging and the round-trip test)."""
    kind, body = term[0], term[1:]
    if kind == "c":
        return "".join(chr(int(body[i : i + 4], 36)) for i in range(0, len(body), 4))
    if kind != "l":
        raise ValueError(f"not an encoded token: {term!r}")
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "z":
            out.append(ch)
            i += 1
        elif body[i + 1] == "x":
            out.append(chr(int(body[i + 2 : i + 6], 36)))
            i += 6
        else:
            out.append(_UNESCAPE[body[i + 1]])
            i += 2
    return "".join(out)


def document(tokens: Iterable[str]) -> str:
    """The analysed field's text for a passage's tokens (repeats kept: they are term frequencies)."""
    return " ".join(encode(t) for t in tokens if t)


def query(tokens: Iterable[str]) -> str:
    """The BM25 query text for a question's distinct tokens."""
    return " ".join(dict.fromkeys(encode(t) for t in tokens if t))
