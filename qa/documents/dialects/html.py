"""HTML inside Markdown: comments, ``<script>``/``<style>`` blocks, tags, ``<img alt>``,
entities, and mermaid.js' ``<div class="mermaid">`` diagrams (which become a mermaid fence).

Tags go, their text stays; a comment or script that spans lines is tracked in ``State`` and
the lines inside it become empty.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qa.documents.clean import State

_HTML_MERMAID_OPEN = re.compile(r"""^\s*<(div|pre)\s+class\s*=\s*["']mermaid["'][^>]*>\s*$""", re.I)
_HTML_IMG = re.compile(r"<img\b[^>]*?>", re.I)
_IMG_ALT = re.compile(r"\balt\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", re.I)
_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#\d{1,7}|#[xX][0-9A-Fa-f]{1,6});")
_SCRIPT_OPEN = re.compile(r"<(script|style)\b[^>]*>", re.I)
# An entity can stand for a line break (&#10;, &#13;, &#x2028;); decoded as such it would split
# one source line into two body lines and shift every line_map entry after it.
_BREAKS = str.maketrans({c: " " for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})

# Tags replaced by a space (they separate words, e.g. table cells) vs. by
# nothing (inline formatting).  Only tags that appear in Markdown prose are
# listed: a bare <name> or <title> in a tech doc is usually a placeholder
# ("kubectl get pod <name>"), which is content and must stay.
_BLOCK_TAGS = (
    "address article aside blockquote br caption center col colgroup dd details dialog div dl dt "
    "figcaption figure footer h1 h2 h3 h4 h5 h6 header hr li nav ol p pre section summary table "
    "tbody td tfoot th thead tr ul iframe video audio source picture"
).split()
_INLINE_TAGS = (
    "a abbr b bdi bdo big cite code del dfn em font i ins kbd mark q s samp small span strike "
    "strong sub sup tt u var wbr"
).split()
_BLOCK_TAG_RE = re.compile(r"</?(?:" + "|".join(_BLOCK_TAGS) + r")\b(?:\s[^<>]*)?/?>", re.I)
_INLINE_TAG_RE = re.compile(r"</?(?:" + "|".join(_INLINE_TAGS) + r")\b(?:\s[^<>]*)?/?>", re.I)


# --------------------------------------------------------------------------- diagrams


def open_fence(line: str) -> tuple[str, str] | None:
    """``<div class="mermaid">`` / ``<pre class="mermaid">`` on its own line opens a mermaid fence."""
    if "mermaid" in line and (m := _HTML_MERMAID_OPEN.match(line)):
        return "html-" + m.group(1).lower(), "```mermaid"
    return None


def closes_fence(fence: str, line: str) -> bool:
    return fence.startswith("html-") and bool(re.search(rf"</{fence[5:]}\s*>", line, re.I))


# --------------------------------------------------------------------------- constructs spanning lines


def after_comment(line: str, st: State) -> str | None:
    """Inside a ``<!--``: the text after its ``-->``, or None while the comment goes on."""
    end = line.find("-->")
    if end < 0:
        return None
    st.comment_from = 0
    return line[end + 3 :]


def after_script(line: str, st: State) -> str | None:
    """Inside ``<script>``/``<style>``: the text after the closing tag, or None while it goes on."""
    m = re.search(rf"</{st.script}\s*>", line, re.I)
    if not m:
        return None
    st.script = None
    return line[m.end() :]


# --------------------------------------------------------------------------- one line


def strip_comments(line: str, st: State) -> str:
    if "<!--" not in line:
        return line
    line = re.sub(r"<!--.*?-->", "", line)
    start = line.find("<!--")
    if start >= 0:
        if st.src in st.literal_comments:
            return line  # never closed: keep the text rather than lose the rest of the file
        st.comment_from = st.src
        line = line[:start]
    return line


def strip_scripts(line: str, st: State) -> str:
    while True:
        m = _SCRIPT_OPEN.search(line)
        if not m:
            return line
        tag = m.group(1).lower()
        close = re.compile(rf"</{tag}\s*>", re.I).search(line, m.end())
        if close:
            line = line[: m.start()] + line[close.end() :]
        else:
            st.script = tag
            return line[: m.start()]


def strip_tags(line: str, st: State) -> str:
    if "<img" in line or "<IMG" in line:
        line = _HTML_IMG.sub(_img_alt, line)
    line = _BLOCK_TAG_RE.sub(" ", line)
    return _INLINE_TAG_RE.sub("", line)


def unescape_entities(line: str, st: State) -> str:
    if "&" not in line:
        return line
    return _ENTITY.sub(lambda m: html.unescape(m[0]).translate(_BREAKS), line).replace("\xa0", " ")


def _img_alt(m: re.Match[str]) -> str:
    alt = _IMG_ALT.search(m[0])
    return f" {alt[1] or alt[2] or ''} " if alt else " "


STRIPPERS = (strip_comments, strip_scripts, strip_tags, unescape_entities)
CONTINUATIONS = (after_comment, after_script)
