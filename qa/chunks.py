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
        return f"chunker-v1:size={self.size}:hard={self.hard_limit}:overlap={self.overlap}"


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
    kind: str = "text"  # text | code | table

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)

    def embed_text(self, title: str) -> str:
        """What the model sees: the passage with its context, so that a stub or a
        bare list item is still findable by its title and headings."""
        ctx = " > ".join([title, *self.heading_path]) if title else self.heading
        return f"{ctx}\n{self.text}" if ctx else self.text


@dataclass
class _Unit:
    start: int
    end: int
    kind: str  # sent | code | table
    hard_break: bool = False  # a unit that must not share a passage with what precedes


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
            current.units.extend(_code_units(body, spans, i, j, cfg.hard_limit, "code"))
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


def _code_units(body, spans, i, j, hard_limit, kind) -> list[_Unit]:
    """A fenced block or table as one unit, or cut on lines if over the hard limit."""
    a, b = spans[i][0], spans[j][1]
    if b - a <= hard_limit:
        return [_Unit(a, b, kind, hard_break=True)]
    units, s = [], a
    for k in range(i, j + 1):
        la, lb = spans[k]
        if lb - s > hard_limit and la > s:
            units.append(_Unit(s, la - 1, kind, hard_break=True))
            s = la
    units.append(_Unit(s, b, kind, hard_break=True))
    return units


def _strip_md(text: str) -> str:
    return re.sub(r"[*_`]+", "", text).strip()


def is_stub(text: str) -> bool:
    stripped = text.strip()
    return bool(STUB_RE.match(stripped)) or len(CONTENT_CHAR_RE.findall(stripped)) < 4


def chunk_document(doc: Document, cfg: ChunkerConfig | None = None) -> list[Chunk]:
    cfg = cfg or ChunkerConfig()
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for section in _sections(doc, cfg):
        for a, b, kind in _pack(section.units, cfg):
            text = doc.body[a:b]
            if not text.strip():
                continue
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
                    is_stub=is_stub(text),
                    kind=kind,
                )
            )
    return chunks


def _pack(units: list[_Unit], cfg: ChunkerConfig) -> list[tuple[int, int, str]]:
    """Greedy packing of units into passages of about ``cfg.size`` characters.

    Sentences overlap by ``cfg.overlap`` between neighbouring passages; code and
    table units never overlap and never share a passage with prose that would
    push them over the size.
    """
    out: list[tuple[int, int, str]] = []
    cur: list[_Unit] = []

    def emit() -> None:
        if cur:
            kinds = {u.kind for u in cur}
            kind = "text" if "sent" in kinds else next(iter(kinds))
            out.append((cur[0].start, cur[-1].end, kind))

    for u in units:
        if cur and (u.end - cur[0].start > cfg.size or u.hard_break and u.end - cur[0].start > cfg.size):
            emit()
            carry = [x for x in cur[-cfg.overlap :] if x.kind == "sent"] if cfg.overlap else []
            # only carry when it leaves room for the new unit
            cur = carry if carry and u.end - carry[0].start <= cfg.size else []
        cur.append(u)
    emit()
    return out
