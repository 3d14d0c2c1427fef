"""MDX (Docusaurus): ``import``/``export`` lines and ``{/* comments */}`` in ``.mdx`` files, and
JSX component tags (``<Tabs>``, ``</TabItem>``: a capital letter, then lower case), which are
removed from every file, since a Markdown file can carry them too."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qa.documents.clean import State

_MDX_COMMENT = re.compile(r"\{/\*.*?\*/\}")
_MDX_IMPORT = re.compile(r"^(import\s.+\sfrom\s|import\s+['\"]|export\s)")
_JSX_TAG = re.compile(r"</?[A-Z][a-z][\w.]*(?:\s[^<>]*)?/?>")


def is_import(line: str, st: State) -> bool:
    return st.mdx and bool(_MDX_IMPORT.match(line))


def strip_comments(line: str, st: State) -> str:
    if st.mdx and "{/*" in line:
        line = _MDX_COMMENT.sub("", line)
    return line


def strip_jsx(line: str, st: State) -> str:
    return _JSX_TAG.sub("", line)


STRIPPERS = (strip_comments, strip_jsx)
