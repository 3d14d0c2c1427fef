"""CommonMark itself: code fences, code spans, links and images, reference definitions,
autolinks, backslash escapes, setext headings and layout-only lines.

Markup is removed and the text it carried is kept (``[text](url)`` -> ``text``); code is never
touched.  Every function here maps one line to one line.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qa.documents.clean import Out, State

# A fence may sit behind a list marker or quote ("- ```go"), as people write it.
_FENCE_OPEN = re.compile(r"^((?:\s*>)*\s*(?:(?:[*+-]|\d+[.)])\s+)?)(`{3,}|~{3,})(.*)$")
# Layout-only lines: thematic breaks (---, ***, ___, "* * *"), leftover ===, [TOC] markers.
_LAYOUT_ONLY = re.compile(r"^ {0,3}(?:([-*_])[ \t]*(?:\1[ \t]*){2,}|={3,}[ \t]*|\[\[?toc\]\]?|@\[toc\])$", re.I)
# CommonMark backslash escapes: a backslash before ASCII punctuation stands for that character.
_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_TABLE_ESCAPE = re.compile(r"\\([!-/:-@\[-`{}~])")  # in a table row "\|" stays: it is not a cell border
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
LIST_ITEM = re.compile(r"^\s*(?:[*+-]|\d+[.)])\s+\S")
_LINK_TEXT = r"((?:[^\[\]]|\[[^\[\]]*\])*)"
_LINK_DEST = r"\(\s*(?:<[^>\n]*>|(?:[^()\s]|\([^()\s]*\))*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
_IMAGE = re.compile(r"!\[" + _LINK_TEXT + r"\]" + _LINK_DEST)
_LINK = re.compile(r"(?<!\\)\[" + _LINK_TEXT + r"\]" + _LINK_DEST)
_REF_IMAGE = re.compile(r"!\[" + _LINK_TEXT + r"\]\[([^\[\]]*)\]")
_REF_LINK = re.compile(r"(?<![\\\]])\[" + _LINK_TEXT + r"\]\[([^\[\]]*)\]")
_SHORTCUT_REF = re.compile(r"(?<![\\\]!])\[([^\[\]^]+)\](?![\[(:])")
_REF_DEF = re.compile(r"^ {0,3}\[([^\]^][^\]]*)\]:\s*\S")
_AUTOLINK = re.compile(r"<{1,2}((?:https?|ftp)://[^<>\s]+|mailto:[^<>\s]+|[\w.+-]+@[\w-]+\.[\w.-]+)>{1,2}")

_SETEXT = re.compile(r"^ {0,3}(={3,}|-{3,})\s*$")
_NOT_PARAGRAPH = re.compile(r"^\s*(?:#|>|\||[*+-]\s|\d+[.)]\s|<|`{3}|~{3})|^ {4,}|^\t")
_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.+?)\s*#*\s*$")


# --------------------------------------------------------------------------- fences


def open_fence(line: str) -> tuple[str, str] | None:
    """``(closing fence prefix, line as emitted)`` when ``line`` opens a ``` or ~~~ fence."""
    m = _FENCE_OPEN.match(line)
    if m and not (m.group(2)[0] == "`" and "`" in m.group(3)):
        return m.group(2), line.rstrip()
    return None


def closes_fence(fence: str, line: str) -> bool:
    s = line.strip().lstrip(">").strip()
    return s.startswith(fence) and not s.strip(fence[0])


# --------------------------------------------------------------------------- links


def reference_ids(lines: list[str]) -> set[str]:
    """Lower-cased ids of the document's ``[id]: url`` definitions (only those refs are links)."""
    ids: set[str] = set()
    for line in lines:
        if "]:" in line:
            m = _REF_DEF.match(line)
            if m:
                ids.add(m.group(1).strip().lower())
    return ids


def is_reference_definition(line: str) -> bool:
    return "]:" in line and bool(_REF_DEF.match(line))


def strip_links(line: str, st: State) -> str:
    if "!" in line:
        line = _IMAGE.sub(lambda m: m[1], line)
        line = _REF_IMAGE.sub(lambda m: m[1], line)
    if "](" in line:
        line = _LINK.sub(lambda m: m[1], line)
    ref_ids = st.ref_ids
    if ref_ids:

        def ref_link(m: re.Match[str]) -> str:
            ref = (m[2] or m[1]).strip().lower()
            return m[1] if ref in ref_ids else m[0]

        line = _REF_LINK.sub(ref_link, line)
        line = _SHORTCUT_REF.sub(lambda m: m[1] if m[1].strip().lower() in ref_ids else m[0], line)
    return line


def strip_autolinks(line: str, st: State) -> str:
    return _AUTOLINK.sub(lambda m: m[1], line)


# --------------------------------------------------------------------------- escapes


def unescape(line: str, st: State) -> str:
    """Undo Markdown backslash escapes (``\\(``, ``1\\)``, ``\\*``) and drop a hard-break backslash.

    Code spans are already protected by placeholders.  A line indented by four spaces or a
    tab is most likely an indented code block (``docker run \\``), so it is left as written.
    """
    if line.startswith(("    ", "\t")) and not LIST_ITEM.match(line):
        return line
    trailing = len(line) - len(line.rstrip("\\"))
    if trailing % 2:
        line = line[:-1]  # "text\\" at the end of a line is a hard line break, not a character
    pattern = _TABLE_ESCAPE if line.lstrip().startswith("|") else _BACKSLASH_ESCAPE
    return pattern.sub(lambda m: m[1], line)


STRIPPERS = (strip_links, strip_autolinks, unescape)


# --------------------------------------------------------------------------- passes over the cleaned lines


def setext_to_atx(out: list[Out]) -> None:
    """Rewrite ``Title\\n===`` as ``# Title`` so the chunker sees one heading style.

    Only a single-line paragraph is converted; a longer paragraph followed by
    ``---`` is far more often meant as a rule than as a heading.
    """
    for i in range(1, len(out)):
        cur, prev = out[i], out[i - 1]
        if cur.code or prev.code or not prev.text.strip():
            continue
        m = _SETEXT.match(cur.text)
        if not m or _NOT_PARAGRAPH.match(prev.text) or _SETEXT.match(prev.text):
            continue
        if i >= 2 and out[i - 2].text.strip() and not out[i - 2].code:
            continue
        level = "#" if m.group(1)[0] == "=" else "##"
        prev.text = f"{level} {prev.text.strip()}"
        cur.text = ""


def drop_layout_lines(out: list[Out]) -> None:
    """Thematic breaks and similar layout-only lines become empty lines (after setext headings
    were recognised), so a passage never ends in a stray ``---``; the line map is unchanged."""
    for o in out:
        if not o.code and o.text and _LAYOUT_ONLY.match(o.text):
            o.text = ""


def first_heading(out: list[Out]) -> str | None:
    for o in out:
        if not o.code:
            m = _ATX.match(o.text)
            if m:
                title = re.sub(r"[*_`]+", "", m.group(2)).strip()
                if title:
                    return title
    return None
