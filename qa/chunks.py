"""Clean documents -> Chinese-aware passages that map back to their source.

A passage is always an exact slice ``body[start:end]`` of the cleaned body, so a
reader can be shown where it sits (character offsets and source lines).  Sections
come from Markdown headings (and bold-only lines, which Chinese blog posts use as
sub-headings); inside a section whole sentences are packed up to a target size,
with code blocks and table rows kept whole.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from qa.documents import Document

HEADING_RE = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
BOLD_HEADING_RE = re.compile(r"^\*\*([^*\n]{1,80}?)\*\*[ \t]*[:：]?[ \t]*$")
FENCE_RE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
TABLE_RE = re.compile(r"^[ \t]*\|")
LIST_RE = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+")
# Sentence ends: CJK terminators (with any closing quotes/brackets that follow),
# ASCII !? and '.' followed by whitespace.  Runs like "。。。" stay together.
SENT_END_RE = re.compile(r"(?:[。！？；!?]+|\.(?=\s)|…+)[”’」』）)\"']*")
CONTENT_CHAR_RE = re.compile(r"[\w\u4e00-\u9fff]")
# Fenced languages that are diagrams, not code: their source is kept for citations but never
# embedded or indexed as prose (see ``diagram_labels``).
DIAGRAM_LANGS = frozenset({"mermaid", "mmd", "plantuml", "puml", "uml", "dot", "graphviz", "flow", "flowchart",
                           "sequence", "sequencediagram", "ditaa", "nomnoml", "d2"})
STUB_RE = re.compile(r"^(待补充|待完善|TODO|TBD|未完待续|敬请期待|略)[。.！!…\s]*$", re.I)


# A line break ends a sentence only before a blank line, a list item, a table row or
# a heading; hard-wrapped prose (common in Chinese posts) continues across lines.
BREAK_RE = re.compile(r"\n(?=\s*\n|\s*(?:[-*+]|\d+[.)])\s|\s*\||\s*#)|\n+$")
SENTENCE_BOUNDARY_RE = re.compile(rf"{SENT_END_RE.pattern}|{BREAK_RE.pattern}")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """[start, end) spans of the sentences of a passage, whitespace trimmed: what answers quote
    and what retrieval's re-scoring windows are made of."""
    spans = []
    s = 0
    for m in SENTENCE_BOUNDARY_RE.finditer(text):
        if m.end() > s:
            spans.append((s, m.end()))
            s = m.end()
    if s < len(text):
        spans.append((s, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


@dataclass(frozen=True)
class ChunkerConfig:
    size: int = 600
    hard_limit: int = 1500
    overlap: int = 1  # sentences carried over into the next passage

    def fingerprint(self) -> str:
        # v2: diagrams are passages of their own (labels embedded), cut code blocks are re-fenced,
        # thematic breaks and backslash escapes are cleaned (qa.documents)
        # v3: a "参阅 <url>" line over "待补充" no longer hides the stub (is_stub)
        # v4: a Liquid tag line missing a brace ("% include code.html … %}") is cleaned
        return f"chunker-v4:size={self.size}:hard={self.hard_limit}:overlap={self.overlap}"


@dataclass
class Chunk:
    key: str  # stable id: hash of source path + text (+ occurrence)
    doc_path: str
    ord: int
    heading_path: list[str]
    text: str
    start: int
    end: int
    line_start: int
    line_end: int
    is_stub: bool
    kind: str = "text"  # text | code | table | diagram
    # A piece of a code block cut at the hard limit lacks its opening and/or closing fence in
    # ``text`` (an exact slice of the body); these are the fence lines shown around it.
    fence_open: str = ""
    fence_close: str = ""

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)

    @property
    def display_text(self) -> str:
        """What readers are shown and what is stored: the slice, re-fenced when it was cut out of
        a longer code block, so no passage has an unbalanced fence.  ``start``/``end`` stay the
        slice's own offsets in the body."""
        text = self.text
        if self.fence_open:
            text = f"{self.fence_open}\n{text}"
        if self.fence_close:
            text = f"{text}\n{self.fence_close}"
        return text

    @property
    def index_text(self) -> str:
        """What the model and the lexical index see of the passage: a diagram's labels, never
        its source (``flowchart TD``, arrows and node ids are not prose)."""
        return diagram_labels(self.text) if self.kind == "diagram" else self.display_text

    def embed_text(self, title: str) -> str:
        """What the model sees: the passage with its context, so that a stub or a
        bare list item is still findable by its title and headings."""
        ctx = " > ".join([title, *self.heading_path]) if title else self.heading
        body = self.index_text
        return f"{ctx}\n{body}" if ctx and body else (ctx or body)


@dataclass
class _Unit:
    start: int
    end: int
    kind: str  # sent | code | table | diagram
    hard_break: bool = False  # a unit that must not share a passage with what precedes
    alone: bool = False  # a diagram or a piece of a cut code block: a passage of its own
    opener: str = ""  # the fence line of the block this unit comes from ("```go")


_FENCE_LINE_RE = re.compile(r"^[ \t>]*(`{3,}|~{3,})(.*)$")
_LABEL_RES = (
    re.compile(r'"([^"\n]+)"'),  # quoted labels: A["..."], label="..." (dot), participant "..."
    re.compile(r"\[\[?[/\\]?([^\[\]\n\"]+?)[/\\]?\]\]?"),  # mermaid [label], [[label]], [/label/]
    re.compile(r"\(\(?\[?([^()\[\]\n\"]+?)\]?\)?\)"),  # (label), ((label)), ([label])
    re.compile(r"\{\{?([^{}\n\"]+?)\}\}?"),  # {decision}
    re.compile(r"\|([^|\n]+)\|"),  # -->|edge label|
    re.compile(r":\s*([^:\n;]+?)\s*;?\s*$", re.M),  # A->>B: message; st=>start: 开始; note: text
    re.compile(r"--\s+([^-\n>][^\n]*?)\s+--[->]", re.M),  # A -- label --> B
    re.compile(r"\bas\s+([^\n]+?)\s*$", re.M),  # participant A as 名称
    re.compile(r"^\s*(?:title|subgraph|section)\s+([^\n\[]+?)\s*$", re.M),  # titles of diagrams and groups
)
_LABEL_NOISE = re.compile(r"^[A-Za-z0-9_.-]{1,3}$|^(?:TD|TB|LR|RL|BT|end|fill|stroke)\b", re.I)


def diagram_labels(source: str) -> str:
    """The human-written labels of a diagram (node texts, edge labels, messages, titles),
    one per line in order of appearance: what a question about the diagram can match.
    Node ids, arrows and keywords are dropped; a diagram without labels yields ''."""
    lines = [ln for ln in source.split("\n") if not _FENCE_LINE_RE.match(ln) and not ln.lstrip().startswith("%%")]
    text = "\n".join(lines)
    found: list[tuple[int, str]] = []
    for rx in _LABEL_RES:
        for m in rx.finditer(text):
            label = m.group(1).strip().strip("\"'")
            if label and CONTENT_CHAR_RE.search(label) and not _LABEL_NOISE.match(label):
                found.append((m.start(1), label))
    out: list[str] = []
    for _, label in sorted(found):
        if not any(label in o for o in out):
            out = [o for o in out if o not in label] + [label]
    return "\n".join(out)


def _missing_close(text: str) -> str:
    """The closing marker when ``text`` has an odd number of fence lines (an unclosed block)."""
    fences = [m.group(1) for ln in text.split("\n") if (m := _FENCE_LINE_RE.match(ln))]
    return fences[-1][0] * 3 if len(fences) % 2 else ""


def refence(text: str, opener: str) -> tuple[str, str]:
    """The fence lines a code passage needs so that it reads as one balanced block:
    ``opener`` in front unless it starts with a fence line, and the closing marker after
    when its fence lines (counting the added opener) do not pair up."""
    if not opener:
        return "", ""
    first = text.split("\n", 1)[0]
    fence_open = "" if _FENCE_LINE_RE.match(first) else opener
    n = sum(1 for ln in text.split("\n") if _FENCE_LINE_RE.match(ln)) + (1 if fence_open else 0)
    marker = _FENCE_LINE_RE.match(opener).group(1) if _FENCE_LINE_RE.match(opener) else "```"
    return fence_open, (marker if n % 2 else "")


def _line_spans(body: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for line in body.split("\n"):
        spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def _split_sentences(body: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Sentences of body[start:end]; over-long ones are cut at commas, then hard."""
    out: list[tuple[int, int]] = []
    s = start
    for m in SENT_END_RE.finditer(body, start, end):
        if m.end() > s:
            out.append((s, m.end()))
            s = m.end()
    if s < end:
        out.append((s, end))
    result: list[tuple[int, int]] = []
    for a, b in out:
        # drop leading whitespace so passages start on content
        while a < b and body[a].isspace():
            a += 1
        if a >= b:
            continue
        while b - a > size:
            window = body[a : a + size]
            cut = max(window.rfind("，"), window.rfind(","), window.rfind("、"), window.rfind(" "))
            cut = a + cut + 1 if cut > size // 3 else a + size
            result.append((a, cut))
            a = cut
        result.append((a, b))
    return result


@dataclass
class _Section:
    heading_path: list[str]
    units: list[_Unit]


def _sections(doc: Document, cfg: ChunkerConfig) -> list[_Section]:
    body = doc.body
    spans = _line_spans(body)
    lines = body.split("\n")
    sections: list[_Section] = []
    stack: list[tuple[int, str]] = []  # (level, text)
    current = _Section([], [])
    para_start: int | None = None
    para_end = 0

    def flush_para() -> None:
        nonlocal para_start
        if para_start is not None:
            for a, b in _split_sentences(body, para_start, para_end, cfg.size):
                current.units.append(_Unit(a, b, "sent"))
            para_start = None

    def new_section(level: int, title: str) -> None:
        nonlocal current
        flush_para()
        sections.append(current)
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        current = _Section([t for _, t in stack], [])

    i = 0
    while i < len(lines):
        line = lines[i]
        a, b = spans[i]
        fence = FENCE_RE.match(line)
        if fence:
            flush_para()
            marker = fence.group(1)
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith(marker[0] * len(marker)):
                j += 1
            j = min(j, len(lines) - 1)
            info = line.strip()[len(marker):].strip().strip("{}.").split()
            lang = info[0].lower() if info else ""
            kind = "diagram" if lang in DIAGRAM_LANGS else "code"
            current.units.extend(_code_units(body, spans, i, j, cfg.hard_limit, kind, opener=line.strip()))
            i = j + 1
            continue
        if TABLE_RE.match(line):
            flush_para()
            j = i
            while j + 1 < len(lines) and TABLE_RE.match(lines[j + 1]):
                j += 1
            current.units.extend(_code_units(body, spans, i, j, cfg.hard_limit, "table"))
            i = j + 1
            continue
        h = HEADING_RE.match(line)
        if h:
            new_section(len(h.group(1)), _strip_md(h.group(2)))
            i += 1
            continue
        bh = BOLD_HEADING_RE.match(line.strip())
        if bh:
            new_section(7, bh.group(1).strip().rstrip(":："))
            i += 1
            continue
        if not line.strip():
            flush_para()
        elif LIST_RE.match(line):
            # each list item is its own sentence group (line breaks in lists end a unit)
            flush_para()
            para_start, para_end = a, b
            flush_para()
        else:
            if para_start is None:
                para_start = a
            para_end = b
        i += 1
    flush_para()
    sections.append(current)
    return [s for s in sections if s.units]


def _code_units(body, spans, i, j, hard_limit, kind, opener: str = "") -> list[_Unit]:
    """A fenced block or table as one unit, or cut on lines if over the hard limit.

    Diagrams and the pieces of a cut block are passages of their own (``alone``): a piece
    is shown re-fenced with the block's ``opener``, which only works when nothing else
    shares its passage."""
    a, b = spans[i][0], spans[j][1]
    if b - a <= hard_limit:
        return [_Unit(a, b, kind, hard_break=True, alone=kind == "diagram", opener=opener)]
    units, s = [], a
    if opener:  # each piece is shown re-fenced: leave room for the fence lines
        hard_limit -= len(opener) + 8
    for k in range(i, j + 1):
        la, lb = spans[k]
        # never a passage of only the opening or only the closing fence line: they stay with
        # their neighbour (a piece that is then too long is cut by characters in qa.ingest)
        if k == i + 1 and opener or k == j and FENCE_RE.match(body[la:lb]):
            continue
        if lb - s > hard_limit and la > s:
            units.append(_Unit(s, la - 1, kind, hard_break=True, alone=bool(opener), opener=opener))
            s = la
    units.append(_Unit(s, b, kind, hard_break=True, alone=bool(opener), opener=opener))
    return units


def _strip_md(text: str) -> str:
    return re.sub(r"[*_`]+", "", text).strip()


# "参阅 <https://…>" above a "待补充" is still a section with nothing written: a pointer line is not content.
POINTER_LINE_RE = re.compile(
    r"^\s*(?:(?:参阅|参考|详见|见|另见|原文|see|ref)\s*[:：]?\s*)?(?:<https?://\S+>|https?://\S+|\[[^\]]*\]\([^)]*\))\s*[。.]?\s*$",
    re.I,
)


def is_stub(text: str) -> bool:
    stripped = "\n".join(ln for ln in text.strip().splitlines() if not POINTER_LINE_RE.match(ln)).strip()
    if not stripped:
        return len(CONTENT_CHAR_RE.findall(text)) < 4
    return bool(STUB_RE.match(stripped)) or len(CONTENT_CHAR_RE.findall(stripped)) < 4


def chunk_document(doc: Document, cfg: ChunkerConfig | None = None) -> list[Chunk]:
    cfg = cfg or ChunkerConfig()
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for section in _sections(doc, cfg):
        for a, b, kind, opener in _pack(section.units, cfg):
            text = doc.body[a:b]
            if not text.strip():
                continue
            if kind in ("code", "diagram"):
                fence_open, fence_close = refence(text, opener)
            else:  # prose followed by a block left open at the end of the article
                fence_open, fence_close = "", _missing_close(text)
            n = seen.get(text, 0)
            seen[text] = n + 1
            key = hashlib.sha256(f"{doc.path}\0{text}\0{n}".encode()).hexdigest()[:20]
            chunks.append(
                Chunk(
                    key=key,
                    doc_path=doc.path,
                    ord=len(chunks),
                    heading_path=section.heading_path,
                    text=text,
                    start=a,
                    end=b,
                    line_start=doc.source_line(a),
                    line_end=doc.source_line(b - 1),
                    is_stub=kind != "diagram" and is_stub(text),
                    kind=kind,
                    fence_open=fence_open,
                    fence_close=fence_close,
                )
            )
    return chunks


def _pack(units: list[_Unit], cfg: ChunkerConfig) -> list[tuple[int, int, str, str]]:
    """Greedy packing of units into passages of about ``cfg.size`` characters.

    Sentences overlap by ``cfg.overlap`` between neighbouring passages; code and
    table units never overlap and never share a passage with prose that would
    push them over the size; diagrams and pieces of cut code blocks are alone.
    Yields ``(start, end, kind, fence opener)``.
    """
    out: list[tuple[int, int, str, str]] = []
    cur: list[_Unit] = []

    def emit() -> None:
        if cur:
            kinds = {u.kind for u in cur}
            kind = "text" if "sent" in kinds else "code" if "code" in kinds else next(iter(kinds))
            opener = cur[0].opener if len(cur) == 1 else ""
            out.append((cur[0].start, cur[-1].end, kind, opener))

    for u in units:
        if cur and (u.alone or cur[-1].alone):
            emit()
            cur = []
        elif cur and (u.end - cur[0].start > cfg.size or u.hard_break and u.end - cur[0].start > cfg.size):
            emit()
            carry = [x for x in cur[-cfg.overlap :] if x.kind == "sent"] if cfg.overlap else []
            # only carry when it leaves room for the new unit
            cur = carry if carry and u.end - carry[0].start <= cfg.size else []
        cur.append(u)
    emit()
    return out


# ---- checks of what passages look like (tests/test_ingest_constructs.py, bench/ingest.py) ----

_DIAGRAM_SOURCE_RE = re.compile(
    r"^\s*(?:(?:graph|flowchart)\s+(?:TD|TB|LR|RL|BT)\b|(?:sequenceDiagram|classDiagram|stateDiagram(?:-v2)?|erDiagram"
    r"|gantt|journey|gitGraph|mindmap)\s*$|subgraph\s|@startuml|digraph\s+\w*\s*\{)",
    re.M,
)
_THEMATIC_RE = re.compile(r"^ {0,3}(?:([-*_])[ \t]*(?:\1[ \t]*){2,}|={3,}[ \t]*)$")
_ESCAPE_RE = re.compile(r"\\[!-/:-@\[-`{}~]")
_SPAN_RE = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)")


def passage_problems(text: str, kind: str) -> list[str]:
    """What would make a stored passage read as garbage: diagram source outside a diagram
    passage, a layout-only line (thematic break) as its last line, a Markdown backslash
    escape in its prose, or an odd number of fence lines."""
    problems = []
    lines = text.split("\n")
    prose, inside = [], False
    for ln in lines:
        if _FENCE_LINE_RE.match(ln):
            inside = not inside
            continue
        if not inside:
            prose.append(ln)
    if kind != "diagram" and _DIAGRAM_SOURCE_RE.search(text):
        problems.append("diagram_source")
    tail = [ln for ln in prose if ln.strip()]
    if tail and _THEMATIC_RE.match(tail[-1]):
        problems.append("ends_with_thematic_break")
    # table rows ("\|" is a literal pipe there) and indented code blocks keep their backslashes
    flat = "\n".join(ln for ln in prose if not ln.lstrip().startswith("|") and not ln.startswith(("    ", "\t")))
    if _ESCAPE_RE.search(_SPAN_RE.sub("", flat)):
        problems.append("backslash_escape")
    if sum(1 for ln in lines if _FENCE_LINE_RE.match(ln)) % 2:
        problems.append("unbalanced_fence")
    return problems
