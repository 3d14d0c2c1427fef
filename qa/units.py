"""A passage -> the pieces an answer may quote, with Markdown structure respected.

Cutting a passage into "sentences" by punctuation alone quotes a comment line of a shell
block without its command, a bullet without the value at its start, a table cell without
its column, a "包含：" without the list it introduces, and Mermaid source as prose.  Here
a list item is one unit, a table row is one unit quoted with its header, a code block is
one unit (never split), diagram source and command output are never units, and a sentence
that ends in "：" records the units it introduces so the answer can keep them together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qa.chunks import HEADING_RE, LIST_RE, split_sentences

DIAGRAM_LANGS = frozenset("mermaid plantuml puml uml dot graphviz flow flowchart sequence seq mermaidjs ditaa".split())
OUTPUT_LANGS = frozenset("text txt output console-output log plaintext stdout".split())
DIAGRAM_START_RE = re.compile(
    r"^\s*(?:graph\s+(?:TD|TB|BT|RL|LR)|flowchart\b|sequenceDiagram|classDiagram|stateDiagram|erDiagram|gantt|pie\b|"
    r"journey|gitGraph|mindmap|subgraph\b|@startuml|digraph\b|st=>|op=>)",
    re.I,
)
# a fence at any indentation: code under a list item is indented like the item's text
FENCE_RE = re.compile(r"^\s*(`{3,}|~{3,})")
TABLE_LINE_RE = re.compile(r"^\s*\|")
TABLE_SEP_RE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
BULLET_RE = re.compile(r"^[ \t]*[-*+][ \t]+")
THEMATIC_RE = re.compile(r"^\s*(?:[-*_]\s*){3,}$")
LEAD_IN_RE = re.compile(r"[：:]\s*$")
_CONTENT_RE = re.compile(r"[\w\u4e00-\u9fff]")
# A shell prompt or an output-looking first token: lines of a block that are commands.
PROMPT_RE = re.compile(r"^\s*(?:\$|#|>|PS>)\s+")
# A Markdown blockquote ("> **注意：**", "> - 当……时，无法缩容"): its markers are layout, what
# it quotes (paragraphs, lists, code) is read as if it stood alone.
QUOTE_RE = re.compile(r"^[ \t]{0,3}(?:>(?:[ \t]|$|(?=>)))+")
# An admonition's label on its own ("**注意：**", "[!NOTE]", "Warning:"): it says nothing by itself.
ADMONITION_RE = re.compile(
    r"^\s*(?:\*\*|__)?\s*(?:\[!\w+\]|注意|警告|提示|说明|重要|注|note|warning|tip|important|caution|info)"
    r"\s*(?:[：:]\s*(?:\*\*|__)?|(?:\*\*|__)\s*[：:]?)?\s*$", re.I)
SETUP_RE = re.compile(r"^(?:想一想|想想看|想象一下|试想一下|试想|设想一下|不妨想想)")
SETUP_FOLLOWS = 3
MAX_ITEM = 260  # a longer list item is quoted sentence by sentence
MAX_CODE_LINES = 8  # longer blocks are shown in the citation, not in the answer


@dataclass
class Unit:
    kind: str  # sent | item | row | code
    text: str  # as shown in the answer
    spans: list[tuple[int, int]]  # [start, end) ranges of the passage text it shows
    block: int  # index of the paragraph, list, table or code block it belongs to
    lead_in: bool = False  # ends in "：" and introduces what follows
    follows: list[int] = field(default_factory=list)  # indices of the units it introduces

    @property
    def start(self) -> int:
        return self.spans[0][0]


def display(text: str) -> str:
    """A unit as shown in an answer: hard-wrapped lines joined (no space next to CJK, one
    between Latin words)."""
    out = ""
    for ln in (QUOTE_RE.sub("", x.strip()).strip() for x in text.split("\n")):
        if not ln:
            continue
        if out and out[-1].isascii() and ln[0].isascii():
            out += " "
        out += ln
    return out


# A lead-in that cannot stand alone: what it announces is the point ("包含：", "有两种原因：").
_ANNOUNCES_RE = re.compile(
    r"(?:包含|包括|如下|以下|下面|下列|为|是|有|例如|比如|譬如|分别|原因|步骤|命令|方法|方式|所示|示例|例子|种|个|点|步|"
    r"内容|参数|选项|格式|这样|这些|情况|字段|操作|如|即|：|:)\s*$"
)
# A trailing pointer clause ("，如下所示：") that can go: the clauses before it still say something.
_POINTER_CLAUSE_RE = re.compile(r"[，,]\s*(?:如下所示|如下|示例如下|命令如下|具体如下|如下图所示|例如|比如|见下文|参考如下)\s*[：:]\s*$")


# "使用下面的命令进行修复：": without what it points at, it says nothing.
_ELLIPSIS_END_RE = re.compile(r"(?:。{2,}|…{2,}|\.{3,})\s*$")
_DEICTIC_RE = re.compile(r"下面|以下|如下|下述|下列|下图")


def closed(unit: "Unit", text: str, says_how: bool = False) -> "Unit | None":
    """A lead-in quoted without what it introduces (a block too long for the answer), when the
    sentence still says something on its own: "……可以修改节点的 limits.conf 调大 ulimit：" is
    shown ending in "。", "……可以方便排查网络问题，如下所示：" without its pointer clause.  None
    when the point is what it announces ("镜像包含：", "一般有两种原因：") — unless ``says_how``:
    to a how question "使用 `helm show values` 可以查看可配置选项：" answers by the command it
    names, and the options it announces are that command's output."""
    if not unit.lead_in or unit.kind not in ("sent", "item") or len(unit.spans) != 1:
        return None
    a, b = unit.spans[0]
    body = text[a:b].rstrip()
    m = _POINTER_CLAUSE_RE.search(body)
    if m:
        body = body[: m.start()]
    else:
        body = LEAD_IN_RE.sub("", body)
        if not body or _ANNOUNCES_RE.search(body) and not says_how:
            return None
    body = body.rstrip()
    if len(_CONTENT_RE.findall(body)) < 8 or _DEICTIC_RE.search(body):
        return None
    return Unit(unit.kind, display(body) + "。", [(a, a + len(body))], unit.block)


def _cells(line: str) -> list[tuple[int, int]]:
    """[start, end) of each table cell's content within ``line``."""
    out = []
    s = line.index("|") + 1 if "|" in line else 0
    while s <= len(line):
        e = line.find("|", s)
        if e == -1:
            e = len(line)
        a, b = s, e
        while a < b and line[a].isspace():
            a += 1
        while b > a and line[b - 1].isspace():
            b -= 1
        if e < len(line) or b > a:
            out.append((a, b))
        s = e + 1
    if out and out[-1][0] == out[-1][1]:
        out.pop()
    return out


def _code_unit(text: str, offs: list[int], rows: range, block: int) -> Unit | None:
    """A short code block as one unit: its non-blank lines, each line its own quoted range."""
    spans = []
    for r in rows:
        line = text[offs[r] :].split("\n", 1)[0]
        if line.strip():
            a = offs[r] + len(line) - len(line.lstrip())
            spans.append((a, offs[r] + len(line.rstrip())))
    if not spans or len(spans) > MAX_CODE_LINES:
        return None
    return Unit("code", "\n".join(text[a:b] for a, b in spans), spans, block)


def code_is_diagram(lang: str, body: str) -> bool:
    first = next((ln for ln in body.split("\n") if ln.strip()), "")
    return lang in DIAGRAM_LANGS or bool(DIAGRAM_START_RE.match(first))


_PAIRS = (("「", "」"), ("『", "』"), ("“", "”"), ("（", "）"), ("(", ")"))


def whole_sentences(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sentences as a reader reads them, from the splitter's spans: a sentence that ends inside
    「……；……」 or （……；……） is joined with the rest of the quote ("告示称「金钱鼠尾，乃新朝之雅政；
    峨冠博带，实亡国之陋规」"), and an ellipsis ("那就。。", "……") followed on the same line is a
    pause, not an end ("要跑 go 应用，那就。。什么都不需要装。")."""
    out: list[tuple[int, int]] = []
    open_ = False
    for a, b in spans:
        if out and (open_ or _ELLIPSIS_END_RE.search(text, out[-1][0], out[-1][1]) and "\n" not in text[out[-1][1] : a]):
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
        seg = text[out[-1][0] : out[-1][1]]
        open_ = any(seg.count(o) > seg.count(c) for o, c in _PAIRS) and len(seg) < MAX_ITEM
    return out


def _quote_prefixes(lines: list[str]) -> list[int]:
    """Length of each line's blockquote markers; none inside a code block that began outside
    a quote (a "> " there is a prompt or output, not a quote)."""
    out: list[int] = []
    fence, quoted = "", False
    for ln in lines:
        m = QUOTE_RE.match(ln)
        q = len(m.group()) if m else 0
        if fence:
            q = q if quoted else 0
            if ln[q:].lstrip().startswith(fence):
                fence = ""
        elif f := FENCE_RE.match(ln[q:]):
            fence, quoted = f.group(1), q > 0
        out.append(q)
    return out


def split_units(text: str, kind: str = "text") -> list[Unit]:
    """The quotable units of passage ``text`` in reading order.

    ``kind`` is the passage's kind from ingest; a ``code`` passage that does not start with
    a fence is a piece of a long block cut by the chunker, and is one code unit."""
    lines = text.split("\n")
    offs, pos = [], 0
    for ln in lines:
        offs.append(pos)
        pos += len(ln) + 1
    for i, q in enumerate(_quote_prefixes(lines)):  # read inside blockquotes as outside
        lines[i] = lines[i][q:]
        offs[i] += q
    units: list[Unit] = []
    block = 0

    def add_paragraph(a: int, b: int) -> None:
        for sa, sb in whole_sentences(text[a:b], split_sentences(text[a:b])):
            s = text[a + sa : a + sb]
            shown = display(s)
            if ADMONITION_RE.match(shown):
                continue
            units.append(Unit("sent", shown, [(a + sa, a + sb)], block, bool(LEAD_IN_RE.search(s))))

    if kind in ("code", "diagram") and not FENCE_RE.match(text.lstrip("\n")):
        if kind == "code" and not code_is_diagram("", text):
            code = _code_unit(text, offs, range(len(lines)), 0)
            if code is not None:
                units.append(code)
        return _link(units, text)

    i = 0
    para: int | None = None  # offset where the current paragraph starts
    para_end = 0

    def flush() -> None:
        nonlocal para, block
        if para is not None:
            add_paragraph(para, para_end)
            para = None
            block += 1

    while i < len(lines):
        line = lines[i]
        fence = FENCE_RE.match(line)
        if fence:
            flush()
            marker = fence.group(1)
            lang = line.strip()[len(marker):].strip().split(" ")[0].lower().strip("{}.")
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith(marker[0] * len(marker)):
                j += 1
            body_lines = lines[i + 1 : j]
            body = "\n".join(body_lines)
            if not code_is_diagram(lang, body) and lang not in OUTPUT_LANGS:
                code = _code_unit(text, offs, range(i + 1, j), block)
                if code is not None:
                    units.append(code)
            block += 1
            i = j + 1
            continue
        if TABLE_LINE_RE.match(line):
            flush()
            j = i
            while j + 1 < len(lines) and TABLE_LINE_RE.match(lines[j + 1]):
                j += 1
            rows = list(range(i, j + 1))
            header = rows[0] if len(rows) > 1 and TABLE_SEP_RE.match(lines[rows[1]]) else None
            body_rows = rows[2:] if header is not None else rows
            hcells = _cells(lines[header]) if header is not None else []
            for r in body_rows:
                if TABLE_SEP_RE.match(lines[r]):
                    continue
                cells = _cells(lines[r])
                parts, spans = [], []
                for ci, (a, b) in enumerate(cells):
                    if a == b:
                        continue
                    cell = lines[r][a:b]
                    if ci < len(hcells) and hcells[ci][1] > hcells[ci][0]:
                        ha, hb = hcells[ci]
                        parts.append(f"{lines[header][ha:hb]}：{cell}")
                        spans.append((offs[header] + ha, offs[header] + hb))
                    else:
                        parts.append(cell)
                    spans.append((offs[r] + a, offs[r] + b))
                if parts:
                    units.append(Unit("row", "；".join(parts), spans, block))
            block += 1
            i = j + 1
            continue
        if HEADING_RE.match(line) or THEMATIC_RE.match(line):
            flush()
            i += 1
            continue
        m = LIST_RE.match(line)
        if m:
            flush()
            j = i
            while j + 1 < len(lines) and lines[j + 1].strip() and not LIST_RE.match(lines[j + 1]) \
                    and not FENCE_RE.match(lines[j + 1]) and not TABLE_LINE_RE.match(lines[j + 1]):
                j += 1
            a = offs[i] + (BULLET_RE.match(line).end() if BULLET_RE.match(line) else 0)
            b = offs[j] + len(lines[j])
            item = text[a:b].strip()
            if item and len(item) <= MAX_ITEM:
                a += len(text[a:b]) - len(text[a:b].lstrip())
                b = a + len(item)
                units.append(Unit("item", display(item), [(a, b)], block, bool(LEAD_IN_RE.search(item))))
            elif item:
                add_paragraph(a, b)
            # consecutive items form one block; a blank line or other content ends it
            nxt = lines[j + 1] if j + 1 < len(lines) else ""
            if not LIST_RE.match(nxt):
                block += 1
            i = j + 1
            continue
        if not line.strip():
            flush()
        else:
            if para is None:
                para = offs[i]
            para_end = offs[i] + len(line)
        i += 1
    flush()
    return _link(units, text)


_MARKUP_LINE_RE = re.compile(r"^[ \t>]*(?:`{3,}|~{3,})[^\n]*$|^[ \t>]*(?:[-*+]|\d+[.)、])[ \t]+", re.M)


def only_markup(gap: str) -> bool:
    """Whether the text between two quoted pieces is only layout: blank lines, fences, list
    markers, table pipes and rules, quote marks — so the second continues the first."""
    return not _MARKUP_LINE_RE.sub("", gap).strip(" \t\r\n|:-—>")


def _link(units: list[Unit], text: str) -> list[Unit]:
    """A lead-in introduces the next block when it ends its own (the list or code under
    "包含：") or else the next sentence of its paragraph — but only when nothing lies between
    them: a lead-in whose code block is too long (or is diagram source or output) to quote
    introduces nothing quotable, and is never followed by an unrelated later unit."""
    for k, u in enumerate(units):
        if u.kind == "sent" and SETUP_RE.match(u.text):
            # "想一想自动驾驶的汽车。": an example is set up; the sentences after it make the point
            for m in range(k + 1, min(len(units), k + 1 + SETUP_FOLLOWS)):
                if units[m].block != u.block or units[m].kind != "sent":
                    break
                u.follows.append(m)
            continue
        if not u.lead_in or k + 1 >= len(units):
            continue
        nxt = units[k + 1]
        if not only_markup(text[u.spans[-1][1] : nxt.start]):
            continue
        if nxt.block == u.block and u.kind == "sent":
            u.follows = [k + 1]
        else:
            u.follows = [m for m in range(k + 1, len(units)) if units[m].block == nxt.block]
    return units
