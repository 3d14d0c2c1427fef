"""Body lines -> cleaned lines, one out per source line; the dialect strippers in their order.

``Cleaner`` walks the body once.  Code fences (``` / ~~~, Liquid ``{% highlight %}``, Hexo
``{% mermaid %}``, ``<div class="mermaid">``) are copied verbatim; every other line goes through
``_clean_line``: constructs still open from earlier lines (HTML comment, script/style, Liquid
comment), then whole-line drops (MDX import, reference definition), then code spans and escaped
shortcodes are protected by placeholders, then ``_PIPELINE`` runs the strippers of each dialect
in a fixed order (the order matters: Hugo shortcodes before Liquid tags, links before HTML tags),
then entities, spacing and backslash escapes.  Afterwards ``clean`` rewrites setext headings,
empties layout-only lines and collapses blank runs; only that last step drops lines, and
``line_map`` is built from what survives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qa.documents.dialects import hugo, html, kramdown, liquid, markdown, mdx

_MULTISPACE = re.compile(r"(?<=\S)[ \t]{2,}")
_PH_OPEN, _PH_CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(_PH_OPEN + r"(\d+)" + _PH_CLOSE)

# (a character the line must contain, the strippers to run then), in this order.
_PIPELINE = (
    ("<", (html.strip_comments, html.strip_scripts)),
    ("{", (liquid.strip_liquid, kramdown.strip_attributes, mdx.strip_comments, kramdown.strip_heading_id)),
    ("%", (liquid.strip_broken_tag,)),
    ("[", (markdown.strip_links,)),
    ("<", (markdown.strip_autolinks, html.strip_tags, mdx.strip_jsx)),
)


@dataclass
class Out:
    text: str
    src: int  # 1-based source line
    code: bool = False


@dataclass
class State:
    """The document a stripper works in, and the multi-line constructs the cleaner is inside of."""

    mdx: bool = False  # an .mdx file: imports and {/* */} comments are MDX syntax
    ref_ids: set[str] = field(default_factory=set)  # [id]: url definitions; only those [text][id] are links
    literal_comments: frozenset[int] = frozenset()  # source lines whose "<!--" never closes
    src: int = 0  # 1-based source line being cleaned
    fence: str | None = None  # closing fence prefix, or "liquid"/"liquid-mermaid"/"html-div"/…
    fence_line: int = 0
    comment_from: int = 0  # source line of an open <!--, 0 when none
    script: str | None = None  # "script"/"style" while inside such a block
    liquid_comment: bool = False
    raw: bool = False  # inside {% raw %}: Liquid is literal text there


@dataclass
class Cleaned:
    body: str
    line_map: list[int]
    out: list[Out]  # one per body source line, before blank runs were collapsed
    warnings: list[str]


class Cleaner:
    """One pass over a body, emitting exactly one output line per source line.

    The 1:1 emission is what keeps ``line_map`` exact: removal only ever
    empties a line, and blank runs are collapsed afterwards in ``_finish``.
    """

    def __init__(self, lines: list[str], first_src: int, mdx: bool, literal_comments: frozenset[int]) -> None:
        self.lines = lines
        self.first_src = first_src
        self.st = State(mdx=mdx, ref_ids=markdown.reference_ids(lines), literal_comments=literal_comments)
        self.warnings: list[str] = []

    # -- driver ---------------------------------------------------------------

    def run(self) -> list[Out]:
        out: list[Out] = []
        skip_next = False
        for idx, line in enumerate(self.lines):
            src = self.first_src + idx
            if skip_next:
                skip_next = False
                out.append(Out("", src))
                continue
            st = self.st
            if st.fence is not None:
                out.append(self._in_fence(line, src))
                continue
            if (
                not st.comment_from
                and not st.script
                and not st.liquid_comment
                and idx + 1 < len(self.lines)
                and kramdown.is_toc_item(line, self.lines[idx + 1])
            ):
                # kramdown "* content\n{:toc}": the list item is only a TOC placeholder.
                out.append(Out("", src))
                skip_next = True
                continue
            if not st.comment_from and not st.script and not st.liquid_comment:
                fence = self._fence_open(line, src)
                if fence is not None:
                    out.append(fence)
                    continue
            out.append(Out(self._clean_line(line, src), src))
        if self.st.fence is not None:
            self.warnings.append(f"unclosed code fence opened on line {self.st.fence_line}")
        return out

    def _fence_open(self, line: str, src: int) -> Out | None:
        for open_fence in (markdown.open_fence, liquid.open_fence, html.open_fence):
            found = open_fence(line)
            if found is not None:
                self.st.fence, text = found
                self.st.fence_line = src
                return Out(text, src, code=True)
        return None

    def _in_fence(self, line: str, src: int) -> Out:
        fence = self.st.fence
        assert fence is not None
        if fence.startswith(("liquid", "html-")):
            # a fence made from a tag: its closing tag becomes the closing ```
            if liquid.closes_fence(fence, line) or html.closes_fence(fence, line):
                self.st.fence = None
                return Out("```", src, code=True)
        elif markdown.closes_fence(fence, line):
            self.st.fence = None
        return Out(line.rstrip(), src, code=True)

    # -- one line outside code fences --------------------------------------------

    def _clean_line(self, line: str, src: int) -> str:
        st = self.st
        st.src = src
        line = line.rstrip()
        # Text left from an HTML block ("    <td>x</td>") is not an indented
        # code block, so its indentation is dropped along with the tags.
        indent = "" if line.lstrip().startswith("<") else line[: len(line) - len(line.lstrip())]
        had_markup = False

        if st.comment_from:
            rest = html.after_comment(line, st)
            if rest is None:
                return ""
            line, had_markup = rest, True
        if st.script:
            rest = html.after_script(line, st)
            if rest is None:
                return ""
            line, had_markup = rest, True
        if st.liquid_comment:
            rest = liquid.after_comment(line, st)
            if rest is None:
                return ""
            line, had_markup = rest, True
        if not line.strip():
            return ""
        if mdx.is_import(line, st):
            return ""
        if markdown.is_reference_definition(line):
            return ""

        saved: list[str] = []

        def protect(text: str) -> str:
            saved.append(text)
            return f"{_PH_OPEN}{len(saved) - 1}{_PH_CLOSE}"

        # A line that already contains the placeholder character (private use
        # area, practically never in prose) is cleaned unprotected rather than
        # risk restoring the wrong text.
        if _PH_OPEN not in line:
            line = hugo.protect_escaped(line, protect)
            if "`" in line:
                line = markdown.CODE_SPAN.sub(lambda m: protect(m[0]), line)

        before = line
        for trigger, strippers in _PIPELINE:
            if trigger in line:
                for strip in strippers:
                    line = strip(line, st)
        had_markup = had_markup or line != before
        line = html.unescape_entities(line, st)
        if had_markup:
            # Markup removal leaves gaps ("<td>a</td><td>b</td>" -> " a  b ");
            # keep the original indentation so list nesting is unchanged.
            line = _MULTISPACE.sub(" ", line)
            stripped = line.strip()
            line = indent + stripped if stripped else ""
        if "\\" in line:
            line = markdown.unescape(line, st)
        if saved:
            line = _PLACEHOLDER.sub(lambda m: saved[int(m[1])], line)
        return line.rstrip()


def clean_body(lines: list[str], first_src: int, mdx: bool) -> Cleaned:
    """Clean the body lines (``first_src`` is the 1-based source line of ``lines[0]``)."""
    out, warnings = _run(lines, first_src, mdx)
    markdown.setext_to_atx(out)
    markdown.drop_layout_lines(out)
    body, line_map = _finish(out)
    return Cleaned(body, line_map, out, warnings)


def _run(lines: list[str], first_src: int, mdx: bool) -> tuple[list[Out], list[str]]:
    """Clean body lines; re-run when an HTML comment is never closed.

    A browser would hide everything after a stray ``<!--``, but for question
    answering losing the rest of an article to one typo is worse than
    showing the marker, so that one opener is treated as text.
    """
    literal: set[int] = set()
    notes: list[str] = []
    for _ in range(8):
        cleaner = Cleaner(lines, first_src, mdx, frozenset(literal))
        out = cleaner.run()
        if not cleaner.st.comment_from:
            break
        notes.append(f"unclosed HTML comment on line {cleaner.st.comment_from}; kept its text")
        literal.add(cleaner.st.comment_from)
    else:
        notes.append(f"unclosed HTML comment on line {cleaner.st.comment_from}; rest of file dropped")
    return out, cleaner.warnings + notes


def _finish(out: list[Out]) -> tuple[str, list[int]]:
    """Collapse blank runs outside code and drop leading/trailing blanks."""
    kept: list[Out] = []
    for o in out:
        if not o.text and not o.code and (not kept or (not kept[-1].text and not kept[-1].code)):
            continue
        kept.append(o)
    while kept and not kept[-1].text:  # incl. the "" after a final newline inside an unclosed fence
        kept.pop()
    return "\n".join(o.text for o in kept), [o.src for o in kept]
