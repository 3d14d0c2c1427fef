"""kramdown (Jekyll's Markdown): inline attribute lists ``{: .class #id key="v"}``, the
``* list item`` + ``{:toc}`` placeholder, and heading ids ``## Title {#id}`` (Hugo writes those
too)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from qa.documents.dialects.markdown import LIST_ITEM

if TYPE_CHECKING:
    from qa.documents.clean import State

_IAL = re.compile(
    r"\{:\s*(?:[.#][A-Za-z_][\w-]*|[A-Za-z_][\w-]*(?:=(?:\"[^\"]*\"|'[^']*'|[^\s}]+))?)"
    r"(?:\s+(?:[.#][A-Za-z_][\w-]*|[A-Za-z_][\w-]*(?:=(?:\"[^\"]*\"|'[^']*'|[^\s}]+))?))*\s*\}"
)
_TOC_LINE = re.compile(r"^\s*\{:\s*toc\s*\}\s*$")
_HEADING_ID = re.compile(r"\s*\{#[\w.:-]+\}\s*$")


def is_toc_item(line: str, next_line: str) -> bool:
    """``* content`` followed by ``{:toc}``: the list item is only a TOC placeholder."""
    return bool(LIST_ITEM.match(line)) and bool(_TOC_LINE.match(next_line))


def strip_attributes(line: str, st: State) -> str:
    if "{:" in line:
        line = _IAL.sub("", line)
    return line


def strip_heading_id(line: str, st: State) -> str:
    if line.lstrip().startswith("#") and "{#" in line:
        line = _HEADING_ID.sub("", line)
    return line


STRIPPERS = (strip_attributes, strip_heading_id)
