"""Jekyll/Liquid (and Hexo) templates: ``{% tag %}``, ``{{ output }}``, ``{% raw %}`` (literal
inside), ``{% comment %}`` blocks, and ``{% highlight lang %}`` / ``{% mermaid %}`` blocks, which
become ``` fences so the chunker treats their source as code or a diagram, never as prose."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from qa.documents.dialects.hugo import strip_shortcodes

if TYPE_CHECKING:
    from qa.documents.clean import State

_HIGHLIGHT_OPEN = re.compile(r"^\s*\{%-?\s*highlight\s+([\w+#.-]+)[^%]*-?%\}\s*$")
_HIGHLIGHT_CLOSE = re.compile(r"\{%-?\s*endhighlight\s*-?%\}")
# Hexo's {% mermaid %} tag: a diagram written outside a fence.
_LIQUID_MERMAID_OPEN = re.compile(r"^\s*\{%-?\s*mermaid\b[^%]*-?%\}\s*$")
_LIQUID_MERMAID_CLOSE = re.compile(r"\{%-?\s*endmermaid\s*-?%\}")
_LIQUID_RAW = re.compile(r"\{%-?\s*(end)?raw\s*-?%\}")
_LIQUID_COMMENT_OPEN = re.compile(r"\{%-?\s*comment\s*-?%\}")
_LIQUID_COMMENT_CLOSE = re.compile(r"\{%-?\s*endcomment\s*-?%\}")
_LIQUID_TAG = re.compile(r"\{%.*?%\}")
_LIQUID_OUTPUT = re.compile(r"\{\{(?![<%]).*?\}\}")
# A tag that lost a brace in conversion ("% include code.html file=\"cronjob.yaml\" %}"): a whole
# line of template, never prose.
_BROKEN_TAG = re.compile(
    r"^\s*\{?%-?\s*(?:include|include_relative|highlight|endhighlight|raw|endraw|capture|endcapture|assign|"
    r"comment|endcomment|if|endif|unless|endunless|for|endfor|else|elsif)\b[^%]*-?%\}?\s*$"
)


def open_fence(line: str) -> tuple[str, str] | None:
    """``(fence kind, line as emitted)`` for ``{% highlight lang %}`` or ``{% mermaid %}`` on its own line."""
    m = _HIGHLIGHT_OPEN.match(line)
    if m:
        return "liquid", "```" + m.group(1)
    if "mermaid" in line and _LIQUID_MERMAID_OPEN.match(line):
        return "liquid-mermaid", "```mermaid"
    return None


def closes_fence(fence: str, line: str) -> bool:
    if fence == "liquid":
        return bool(_HIGHLIGHT_CLOSE.search(line))
    if fence == "liquid-mermaid":
        return bool(_LIQUID_MERMAID_CLOSE.search(line))
    return False


def after_comment(line: str, st: State) -> str | None:
    """Inside ``{% comment %}``: the text after ``{% endcomment %}``, or None while it goes on."""
    m = _LIQUID_COMMENT_CLOSE.search(line)
    if not m:
        return None
    st.liquid_comment = False
    return line[m.end() :]


def strip_broken_tag(line: str, st: State) -> str:
    """A line that is a Liquid tag missing its opening or closing brace goes (a whole tag has
    been stripped already)."""
    return "" if not st.raw and _BROKEN_TAG.match(line) else line


def strip_liquid(line: str, st: State) -> str:
    """Tags and output go, except inside ``{% raw %}``.  Hugo shortcodes on the same line are
    removed first: ``{{% x %}}`` contains a ``{% x %}`` the tag pattern would half-eat."""
    if "{%" in line:
        if _LIQUID_RAW.search(line):
            parts = _LIQUID_RAW.split(line)
            # split() interleaves the "end" group: text, flag, text, ...
            kept: list[str] = []
            for i, part in enumerate(parts):
                if i % 2 == 1:
                    st.raw = part is None
                elif part:
                    kept.append(part if st.raw else _tags(part, st))
            line = "".join(kept)
        elif not st.raw:
            line = _tags(line, st)
    elif "{{" in line and not st.raw:
        line = _LIQUID_OUTPUT.sub("", line)
        line = strip_shortcodes(line, st)
    return line


def _tags(line: str, st: State) -> str:
    m = _LIQUID_COMMENT_OPEN.search(line)
    if m:
        close = _LIQUID_COMMENT_CLOSE.search(line, m.end())
        if close:
            line = line[: m.start()] + line[close.end() :]
        else:
            st.liquid_comment = True
            line = line[: m.start()]
    line = strip_shortcodes(line, st)
    line = _LIQUID_TAG.sub("", line)
    return _LIQUID_OUTPUT.sub("", line)


STRIPPERS = (strip_liquid, strip_broken_tag)
CONTINUATIONS = (after_comment,)
