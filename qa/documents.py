"""Articles on disk -> clean ``Document`` objects.

The corpus is hand-written Chinese blog posts and docs (Jekyll/kramdown,
Hugo, Docusaurus/MDX, MkDocs).  Everything here is deliberately tolerant:
a single odd file must never stop ingestion, so problems become ``Skipped``
entries or ``Document.warnings`` instead of exceptions.

Cleaning works line by line and never merges or splits lines, so every body
line can be traced back to the source line it came from (``line_map``); that
is what lets answers cite "file.md:56".  A source line whose content is all
noise becomes an empty line first; runs of empty lines are then collapsed,
and ``line_map`` is built from what survives.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import re
import tomllib
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any, Iterator

import yaml

SUFFIXES = (".md", ".markdown", ".mdx", ".txt")

# A Markdown article larger than this is almost certainly a generated dump or
# a mis-named binary; reading it would only slow ingestion down.
MAX_BYTES = 20 * 1024 * 1024

_SNIFF_BYTES = 8192


@dataclass
class Document:
    path: str  # posix path relative to the corpus root, e.g. "2024-06-11-docker-k8s-relationship.md"
    title: str
    body: str  # cleaned Markdown: headings (#), fences, tables, lists kept; noise removed
    line_map: list[int]  # line_map[i] = 1-based source line of body line i (body.split("\n"))
    content_hash: str  # sha256 hex of the raw file bytes
    meta: dict = field(default_factory=dict)  # date, categories, tags, url, permalink (JSON-able)
    encoding: str = "utf-8"
    warnings: list[str] = field(default_factory=list)

    def source_line(self, offset: int) -> int:
        """1-based source line of a character offset into ``body``."""
        i = self.body.count("\n", 0, max(0, min(offset, len(self.body))))
        return self.line_map[min(i, len(self.line_map) - 1)] if self.line_map else 1


@dataclass
class Skipped:
    path: str
    reason: str


# --------------------------------------------------------------------------- decoding


class _Undecodable(Exception):
    """Raised with the Skipped reason when bytes are not usable text."""


_BOMS: tuple[tuple[bytes, str, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 LE one.
    (b"\xff\xfe\x00\x00", "utf-32-le", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32-be", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8", "utf-8-sig"),
    (b"\xff\xfe", "utf-16-le", "utf-16"),
    (b"\xfe\xff", "utf-16-be", "utf-16"),
)

# Control characters that never occur in real text; \t \n \r \f \v and ESC
# (ANSI colours in pasted terminal output) are tolerated.
_BAD_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def _bomless_utf16(sample: bytes) -> str | None:
    """Guess BOM-less UTF-16 from where the NUL bytes sit.

    ASCII-heavy UTF-16 has a NUL in every other byte; a binary file has them
    scattered on both parities.  This is what lets the NUL test tell binary
    files from UTF-16 text that lost its BOM.
    """
    even, odd = sample[0::2], sample[1::2]
    if not even or not odd:
        return None
    even_nul, odd_nul = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_nul > 0.3 and even_nul < 0.01:
        return "utf-16-le"
    if even_nul > 0.3 and odd_nul < 0.01:
        return "utf-16-be"
    return None


def _decode(raw: bytes) -> tuple[str, str, list[str]]:
    """Return ``(text, encoding, warnings)`` or raise ``_Undecodable`` with the reason.

    Order matters: BOMs are authoritative; then UTF-8 (strict, so GBK bytes
    fail it reliably); GB18030 last because it accepts almost any byte soup
    and would otherwise swallow UTF-8.  A UTF-8 file with a few corrupt bytes
    (a bad copy/paste, a truncated last character) must not be mistaken for
    GB18030 and turned into mojibake, hence ``_lenient_utf8``.
    """
    for bom, codec, label in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom):].decode(codec), label, []
            except UnicodeDecodeError:
                if codec == "utf-8":
                    lenient = _lenient_utf8(raw[len(bom):], force=True)
                    if lenient:
                        return lenient[0], label, lenient[1]
                raise _Undecodable(f"invalid {label} after byte order mark") from None
    sample = raw[:_SNIFF_BYTES]
    if b"\x00" in sample:
        codec = _bomless_utf16(sample[: len(sample) // 2 * 2])
        if codec is None:
            raise _Undecodable("binary file")
        try:
            return raw.decode(codec), "utf-16", []
        except UnicodeDecodeError:
            raise _Undecodable("binary file") from None
    try:
        return raw.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError:
        pass
    lenient = _lenient_utf8(raw, force=False)
    if lenient:
        return lenient[0], "utf-8", lenient[1]
    try:
        return raw.decode("gb18030"), "gb18030", []
    except UnicodeDecodeError:
        pass
    lenient = _lenient_utf8(raw, force=True)
    if lenient:
        return lenient[0], "utf-8", lenient[1]
    raise _Undecodable("cannot decode as UTF-8, UTF-16 or GB18030")


def _lenient_utf8(raw: bytes, force: bool) -> tuple[str, list[str]] | None:
    """Decode mostly-valid UTF-8, replacing the few bad bytes.

    Without ``force`` the file must be overwhelmingly real UTF-8 (GBK text
    essentially never forms valid multi-byte UTF-8); with it, any file with
    at most 1% damage is accepted, as the last resort before giving up.
    """
    text = raw.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - raw.count(b"\xef\xbf\xbd")
    if bad <= 0:
        return None
    good = sum(1 for ch in text if ch > "\x7f") - text.count("\ufffd")
    if good >= 20 * bad or (force and bad <= len(text) // 100):
        return text, [f"{bad} invalid UTF-8 byte sequence(s) replaced with U+FFFD"]
    return None


def _looks_binary(text: str) -> bool:
    head = text[:_SNIFF_BYTES]
    return bool(head) and len(_BAD_CONTROL.findall(head)) > max(8, len(head) // 20)


# Characters str.splitlines() treats as line breaks but "\n"-splitting does
# not; left in, they would make downstream code disagree with line_map.
_ODD_BREAKS = str.maketrans({c: " " for c in "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


# --------------------------------------------------------------------------- front matter

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAMLISH_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*:(\s|$)")
_SALVAGE = re.compile(
    r"^(title|date|slug|url|permalink|description|summary|categories|category|tags|tag)\s*:\s*(.*?)\s*$"
)


@dataclass
class _FrontMatter:
    data: dict[str, Any]
    body_start: int  # 0-based index of the first body line
    warnings: list[str]


def _skip_leading_comments(lines: list[str]) -> int:
    """Index of the first line that is neither blank nor inside a leading HTML comment.

    Translated docs (kubernetes-docs-zh) keep the English front matter inside
    a ``<!-- -->`` block *before* the real one, so the real block does not
    start on line 1.
    """
    i, n = 0, min(len(lines), 400)
    while i < n:
        s = lines[i].strip()
        if not s:
            i += 1
        elif s.startswith("<!--"):
            j = i
            while j < n and "-->" not in lines[j][4 if j == i else 0:]:
                j += 1
            if j >= n or not lines[j].rstrip().endswith("-->"):
                return i
            i = j + 1
        else:
            return i
    return i


def _parse_block(text: str, fmt: str) -> tuple[Any, str | None]:
    try:
        if fmt == "toml":
            return tomllib.loads(text), None
        return yaml.load(text, Loader=_YAML_LOADER), None
    except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, first


def _salvage(block: list[str]) -> dict[str, Any]:
    """Recover the simple ``key: value`` lines from front matter YAML rejected.

    A stray colon or tab somewhere should not cost the article its title.
    """
    data: dict[str, Any] = {}
    for line in block:
        m = _SALVAGE.match(line)
        if not m or not m.group(2):
            continue
        value: Any = m.group(2).strip().strip("'\"")
        if value.startswith("[") and value.endswith("]"):
            value = [v.strip().strip("'\"") for v in value[1:-1].split(",") if v.strip()]
        data.setdefault(m.group(1), value)
    return data


def _front_matter(lines: list[str]) -> _FrontMatter:
    start = _skip_leading_comments(lines)
    if start >= len(lines):
        return _FrontMatter({}, 0, [])
    opener = lines[start].rstrip()
    if opener not in ("---", "+++"):
        return _FrontMatter({}, 0, [])
    fmt = "toml" if opener == "+++" else "yaml"
    closers = ("+++",) if fmt == "toml" else ("---", "...")
    end = next((j for j in range(start + 1, len(lines)) if lines[j].rstrip() in closers), None)
    if end is None:
        return _unclosed_front_matter(lines, start, fmt)

    block = lines[start + 1 : end]
    data, error = _parse_block("\n".join(block), fmt)
    if isinstance(data, dict):
        return _FrontMatter(data, end + 1, [])
    if data is None and error is None:  # "---\n---": empty front matter
        return _FrontMatter({}, end + 1, [])
    looks_like_fm = any(_YAMLISH_KEY.match(b) for b in block)
    where = f"lines {start + 1}-{end + 1}"
    if not looks_like_fm:
        # "---" used as a horizontal rule around prose: Jekyll would eat it,
        # but the text is content, so it stays in the body.
        return _FrontMatter({}, 0, [f"{where}: '{opener}' block is not front matter; kept as body"])
    why = f"malformed {fmt.upper()} front matter ({error})" if error else f"{fmt.upper()} front matter is not a mapping"
    return _FrontMatter(_salvage(block), end + 1, [f"{where}: {why}; salvaged simple key: value lines"])


def _unclosed_front_matter(lines: list[str], start: int, fmt: str) -> _FrontMatter:
    """Handle an opening ``---`` that is never closed.

    Choice: treat only the run of ``key: value`` lines right after the opener
    (up to the first blank or non-YAML line) as front matter, because
    authors who forget the closer still write the keys first and the article
    after a blank line.  If that run does not parse as a mapping the whole
    file stays body, so no article text is ever lost.
    """
    j = start + 1
    while j < len(lines):
        s = lines[j]
        is_key = bool(_YAMLISH_KEY.match(s))
        # Indented lines and "- item" lines continue a key only after the first one.
        continues = j > start + 1 and bool(s.strip()) and (s[:1] in (" ", "\t") or s.startswith("- "))
        if not (is_key or continues):
            break
        j += 1
    block = lines[start + 1 : j]
    data, _ = _parse_block("\n".join(block), fmt) if block and fmt == "yaml" else (None, None)
    opener_line = start + 1
    if isinstance(data, dict) and data:
        return _FrontMatter(
            data,
            j,
            [f"unclosed front matter (line {opener_line} has no closing delimiter); "
             f"used lines {opener_line + 1}-{j} as front matter, rest kept as body"],
        )
    return _FrontMatter(
        {}, start + 1, [f"unclosed front matter (line {opener_line} has no closing delimiter); whole file kept as body"]
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _str_list(*values: Any) -> list[str]:
    """Categories/tags as a flat, de-duplicated list of strings.

    Jekyll splits a plain string on whitespace (``categories: Docker k8s`` is
    two categories); a comma-separated string is split on commas instead.
    """
    out: list[str] = []

    def add(v: Any) -> None:
        if v is None:
            return
        if isinstance(v, (list, tuple, set)):
            for item in v:
                add(item)
            return
        if isinstance(v, str):
            parts = re.split(r"[,，、]", v) if re.search(r"[,，、]", v) else v.split()
        else:
            parts = [str(_jsonable(v))]
        for p in parts:
            p = p.strip().strip("'\"")
            if p and p not in out:
                out.append(p)

    for v in values:
        add(v)
    return out


_JEKYLL_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(.+)$")
# Jekyll's usual "2023-01-02 10:30:00 +0800" is not a YAML timestamp (the
# offset lacks a colon), so YAML leaves it a string.
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d")


def _iso_date(value: Any) -> str:
    if isinstance(value, str):
        text = value.strip()
        for fmt in _DATE_FORMATS:
            try:
                parsed = _dt.datetime.strptime(text, fmt)
                return parsed.isoformat() if "%H" in fmt else parsed.date().isoformat()
            except ValueError:
                continue
        return text
    return str(_jsonable(value)).strip()


def _normalise_meta(raw: dict[str, Any], stem: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "categories": _str_list(raw.get("categories"), raw.get("category")),
        "tags": _str_list(raw.get("tags"), raw.get("tag")),
    }
    title = raw.get("title")
    if title is not None and not isinstance(title, (dict, list)):
        title = str(_jsonable(title)).strip()
        if title:
            meta["title"] = title
    date = raw.get("date", raw.get("publishDate"))
    if date is not None and not isinstance(date, (dict, list)):
        meta["date"] = _iso_date(date)
    else:
        m = _JEKYLL_DATE.match(stem)  # Jekyll posts carry their date in the file name
        if m:
            try:
                meta["date"] = _dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
            except ValueError:
                pass
    for key in ("permalink", "url", "slug"):
        if raw.get(key) not in (None, ""):
            meta[key] = str(_jsonable(raw[key])).strip()
    description = raw.get("description") or raw.get("summary")
    if description not in (None, "") and not isinstance(description, (dict, list)):
        meta["description"] = str(_jsonable(description)).strip()
    return meta


# --------------------------------------------------------------------------- body cleaning

# A fence may sit behind a list marker or quote ("- ```go"), as people write it.
_FENCE_OPEN = re.compile(r"^((?:\s*>)*\s*(?:(?:[*+-]|\d+[.)])\s+)?)(`{3,}|~{3,})(.*)$")
_HIGHLIGHT_OPEN = re.compile(r"^\s*\{%-?\s*highlight\s+([\w+#.-]+)[^%]*-?%\}\s*$")
_HIGHLIGHT_CLOSE = re.compile(r"\{%-?\s*endhighlight\s*-?%\}")
# Diagrams written outside a fence: Hexo's {% mermaid %} tag and mermaid.js' <div class="mermaid">.
# Both become a ```mermaid fence so the chunker treats their source as a diagram, never as prose.
_LIQUID_MERMAID_OPEN = re.compile(r"^\s*\{%-?\s*mermaid\b[^%]*-?%\}\s*$")
_LIQUID_MERMAID_CLOSE = re.compile(r"\{%-?\s*endmermaid\s*-?%\}")
_HTML_MERMAID_OPEN = re.compile(r"""^\s*<(div|pre)\s+class\s*=\s*["']mermaid["'][^>]*>\s*$""", re.I)
# Layout-only lines: thematic breaks (---, ***, ___, "* * *"), leftover ===, [TOC] markers.
_LAYOUT_ONLY = re.compile(r"^ {0,3}(?:([-*_])[ \t]*(?:\1[ \t]*){2,}|={3,}[ \t]*|\[\[?toc\]\]?|@\[toc\])$", re.I)
# CommonMark backslash escapes: a backslash before ASCII punctuation stands for that character.
_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_TABLE_ESCAPE = re.compile(r"\\([!-/:-@\[-`{}~])")  # in a table row "\|" stays: it is not a cell border
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_ESCAPED_SHORTCODE = re.compile(r"\{\{([<%])/\*\s*(.*?)\s*\*/([>%])\}\}")
_LIQUID_RAW = re.compile(r"\{%-?\s*(end)?raw\s*-?%\}")
_LIQUID_COMMENT_OPEN = re.compile(r"\{%-?\s*comment\s*-?%\}")
_LIQUID_COMMENT_CLOSE = re.compile(r"\{%-?\s*endcomment\s*-?%\}")
_LIQUID_TAG = re.compile(r"\{%.*?%\}")
_LIQUID_OUTPUT = re.compile(r"\{\{(?![<%]).*?\}\}")
_SHORTCODE = re.compile(r"\{\{<.*?>\}\}|\{\{%.*?%\}\}")
_MDX_COMMENT = re.compile(r"\{/\*.*?\*/\}")
_MDX_IMPORT = re.compile(r"^(import\s.+\sfrom\s|import\s+['\"]|export\s)")
_JSX_TAG = re.compile(r"</?[A-Z][a-z][\w.]*(?:\s[^<>]*)?/?>")
_IAL = re.compile(
    r"\{:\s*(?:[.#][A-Za-z_][\w-]*|[A-Za-z_][\w-]*(?:=(?:\"[^\"]*\"|'[^']*'|[^\s}]+))?)"
    r"(?:\s+(?:[.#][A-Za-z_][\w-]*|[A-Za-z_][\w-]*(?:=(?:\"[^\"]*\"|'[^']*'|[^\s}]+))?))*\s*\}"
)
_TOC_LINE = re.compile(r"^\s*\{:\s*toc\s*\}\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[*+-]|\d+[.)])\s+\S")
_HEADING_ID = re.compile(r"\s*\{#[\w.:-]+\}\s*$")
_LINK_TEXT = r"((?:[^\[\]]|\[[^\[\]]*\])*)"
_LINK_DEST = r"\(\s*(?:<[^>\n]*>|(?:[^()\s]|\([^()\s]*\))*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
_IMAGE = re.compile(r"!\[" + _LINK_TEXT + r"\]" + _LINK_DEST)
_LINK = re.compile(r"(?<!\\)\[" + _LINK_TEXT + r"\]" + _LINK_DEST)
_REF_IMAGE = re.compile(r"!\[" + _LINK_TEXT + r"\]\[([^\[\]]*)\]")
_REF_LINK = re.compile(r"(?<![\\\]])\[" + _LINK_TEXT + r"\]\[([^\[\]]*)\]")
_SHORTCUT_REF = re.compile(r"(?<![\\\]!])\[([^\[\]^]+)\](?![\[(:])")
_REF_DEF = re.compile(r"^ {0,3}\[([^\]^][^\]]*)\]:\s*\S")
_AUTOLINK = re.compile(r"<{1,2}((?:https?|ftp)://[^<>\s]+|mailto:[^<>\s]+|[\w.+-]+@[\w-]+\.[\w.-]+)>{1,2}")
_HTML_IMG = re.compile(r"<img\b[^>]*?>", re.I)
_IMG_ALT = re.compile(r"\balt\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", re.I)
_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#\d{1,7}|#[xX][0-9A-Fa-f]{1,6});")
_SCRIPT_OPEN = re.compile(r"<(script|style)\b[^>]*>", re.I)

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
_MULTISPACE = re.compile(r"(?<=\S)[ \t]{2,}")

_SETEXT = re.compile(r"^ {0,3}(={3,}|-{3,})\s*$")
_NOT_PARAGRAPH = re.compile(r"^\s*(?:#|>|\||[*+-]\s|\d+[.)]\s|<|`{3}|~{3})|^ {4,}|^\t")

_PH_OPEN, _PH_CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(_PH_OPEN + r"(\d+)" + _PH_CLOSE)


@dataclass
class _Out:
    text: str
    src: int  # 1-based source line
    code: bool = False


@dataclass
class _State:
    """Multi-line constructs the line-by-line cleaner is inside of."""

    fence: str | None = None  # closing fence prefix, or "liquid" for {% highlight %}
    fence_line: int = 0
    comment_from: int = 0  # source line of an open <!--, 0 when none
    script: str | None = None  # "script"/"style" while inside such a block
    liquid_comment: bool = False
    raw: bool = False  # inside {% raw %}: Liquid is literal text there


class _Cleaner:
    """One pass over a body, emitting exactly one output line per source line.

    The 1:1 emission is what keeps ``line_map`` exact: removal only ever
    empties a line, and blank runs are collapsed afterwards in ``_finish``.
    """

    def __init__(self, lines: list[str], first_src: int, mdx: bool, literal_comments: frozenset[int]) -> None:
        self.lines = lines
        self.first_src = first_src
        self.mdx = mdx
        self.literal_comments = literal_comments  # source lines whose "<!--" never closes
        self.ref_ids = self._reference_ids()
        self.st = _State()
        self.warnings: list[str] = []

    def _reference_ids(self) -> set[str]:
        ids: set[str] = set()
        for line in self.lines:
            if "]:" in line:
                m = _REF_DEF.match(line)
                if m:
                    ids.add(m.group(1).strip().lower())
        return ids

    # -- driver ---------------------------------------------------------------

    def run(self) -> list[_Out]:
        out: list[_Out] = []
        skip_next = False
        for idx, line in enumerate(self.lines):
            src = self.first_src + idx
            if skip_next:
                skip_next = False
                out.append(_Out("", src))
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
                and _LIST_ITEM.match(line)
                and _TOC_LINE.match(self.lines[idx + 1])
            ):
                # kramdown "* content\n{:toc}": the list item is only a TOC placeholder.
                out.append(_Out("", src))
                skip_next = True
                continue
            if not st.comment_from and not st.script and not st.liquid_comment:
                fence = self._fence_open(line, src)
                if fence is not None:
                    out.append(fence)
                    continue
            out.append(_Out(self._clean_line(line, src), src))
        if self.st.fence is not None:
            self.warnings.append(f"unclosed code fence opened on line {self.st.fence_line}")
        return out

    def _fence_open(self, line: str, src: int) -> _Out | None:
        m = _FENCE_OPEN.match(line)
        if m and not (m.group(2)[0] == "`" and "`" in m.group(3)):
            self.st.fence = m.group(2)
            self.st.fence_line = src
            return _Out(line.rstrip(), src, code=True)
        m = _HIGHLIGHT_OPEN.match(line)
        if m:
            self.st.fence = "liquid"
            self.st.fence_line = src
            return _Out("```" + m.group(1), src, code=True)
        if "mermaid" in line:
            if _LIQUID_MERMAID_OPEN.match(line):
                self.st.fence = "liquid-mermaid"
            elif (m := _HTML_MERMAID_OPEN.match(line)):
                self.st.fence = "html-" + m.group(1).lower()
            else:
                return None
            self.st.fence_line = src
            return _Out("```mermaid", src, code=True)
        return None

    def _in_fence(self, line: str, src: int) -> _Out:
        fence = self.st.fence
        assert fence is not None
        if fence == "liquid":
            if _HIGHLIGHT_CLOSE.search(line):
                self.st.fence = None
                return _Out("```", src, code=True)
        elif fence == "liquid-mermaid":
            if _LIQUID_MERMAID_CLOSE.search(line):
                self.st.fence = None
                return _Out("```", src, code=True)
        elif fence.startswith("html-"):
            if re.search(rf"</{fence[5:]}\s*>", line, re.I):
                self.st.fence = None
                return _Out("```", src, code=True)
        else:
            s = line.strip().lstrip(">").strip()
            if s.startswith(fence) and not s.strip(fence[0]):
                self.st.fence = None
        return _Out(line.rstrip(), src, code=True)

    # -- one line outside code fences --------------------------------------------

    def _clean_line(self, line: str, src: int) -> str:
        st = self.st
        line = line.rstrip()
        # Text left from an HTML block ("    <td>x</td>") is not an indented
        # code block, so its indentation is dropped along with the tags.
        indent = "" if line.lstrip().startswith("<") else line[: len(line) - len(line.lstrip())]
        had_markup = False

        if st.comment_from:
            end = line.find("-->")
            if end < 0:
                return ""
            line, st.comment_from, had_markup = line[end + 3 :], 0, True
        if st.script:
            m = re.search(rf"</{st.script}\s*>", line, re.I)
            if not m:
                return ""
            line, st.script, had_markup = line[m.end() :], None, True
        if st.liquid_comment:
            m = _LIQUID_COMMENT_CLOSE.search(line)
            if not m:
                return ""
            line, st.liquid_comment, had_markup = line[m.end() :], False, True
        if not line.strip():
            return ""
        if self.mdx and _MDX_IMPORT.match(line):
            return ""
        if "]:" in line and _REF_DEF.match(line):
            return ""

        saved: list[str] = []

        def protect(text: str) -> str:
            saved.append(text)
            return f"{_PH_OPEN}{len(saved) - 1}{_PH_CLOSE}"

        # A line that already contains the placeholder character (private use
        # area, practically never in prose) is cleaned unprotected rather than
        # risk restoring the wrong text.
        if _PH_OPEN not in line:
            if "{{" in line and "/*" in line:
                line = _ESCAPED_SHORTCODE.sub(lambda m: protect(f"{{{{{m[1]} {m[2]} {m[3]}}}}}"), line)
            if "`" in line:
                line = _CODE_SPAN.sub(lambda m: protect(m[0]), line)

        before = line
        if "<" in line:
            line = self._strip_comments(line, src)
            line = self._strip_scripts(line)
        if "{" in line:
            line = self._strip_templates(line)
        if "[" in line:
            line = self._strip_links(line)
        if "<" in line:
            line = _AUTOLINK.sub(lambda m: m[1], line)
            line = self._strip_tags(line)
        had_markup = had_markup or line != before
        if "&" in line:
            line = _ENTITY.sub(lambda m: html.unescape(m[0]), line).replace("\xa0", " ")
        if had_markup:
            # Markup removal leaves gaps ("<td>a</td><td>b</td>" -> " a  b ");
            # keep the original indentation so list nesting is unchanged.
            line = _MULTISPACE.sub(" ", line)
            stripped = line.strip()
            line = indent + stripped if stripped else ""
        if "\\" in line:
            line = _unescape(line)
        if saved:
            line = _PLACEHOLDER.sub(lambda m: saved[int(m[1])], line)
        return line.rstrip()

    def _strip_comments(self, line: str, src: int) -> str:
        if "<!--" not in line:
            return line
        line = re.sub(r"<!--.*?-->", "", line)
        start = line.find("<!--")
        if start >= 0:
            if src in self.literal_comments:
                return line  # never closed: keep the text rather than lose the rest of the file
            self.st.comment_from = src
            line = line[:start]
        return line

    def _strip_scripts(self, line: str) -> str:
        while True:
            m = _SCRIPT_OPEN.search(line)
            if not m:
                return line
            tag = m.group(1).lower()
            close = re.compile(rf"</{tag}\s*>", re.I).search(line, m.end())
            if close:
                line = line[: m.start()] + line[close.end() :]
            else:
                self.st.script = tag
                return line[: m.start()]

    def _strip_templates(self, line: str) -> str:
        st = self.st
        if "{%" in line:
            if _LIQUID_RAW.search(line):
                parts = _LIQUID_RAW.split(line)
                # split() interleaves the "end" group: text, flag, text, ...
                kept: list[str] = []
                for i, part in enumerate(parts):
                    if i % 2 == 1:
                        st.raw = part is None
                    elif part:
                        kept.append(part if st.raw else self._liquid(part))
                line = "".join(kept)
            elif not st.raw:
                line = self._liquid(line)
        elif "{{" in line and not st.raw:
            line = _LIQUID_OUTPUT.sub("", line)
            line = _SHORTCODE.sub("", line)
        if "{:" in line:
            line = _IAL.sub("", line)
        if self.mdx and "{/*" in line:
            line = _MDX_COMMENT.sub("", line)
        if line.lstrip().startswith("#") and "{#" in line:
            line = _HEADING_ID.sub("", line)
        return line

    def _liquid(self, line: str) -> str:
        m = _LIQUID_COMMENT_OPEN.search(line)
        if m:
            close = _LIQUID_COMMENT_CLOSE.search(line, m.end())
            if close:
                line = line[: m.start()] + line[close.end() :]
            else:
                self.st.liquid_comment = True
                line = line[: m.start()]
        line = _SHORTCODE.sub("", line)
        line = _LIQUID_TAG.sub("", line)
        return _LIQUID_OUTPUT.sub("", line)

    def _strip_links(self, line: str) -> str:
        if "!" in line:
            line = _IMAGE.sub(lambda m: m[1], line)
            line = _REF_IMAGE.sub(lambda m: m[1], line)
        if "](" in line:
            line = _LINK.sub(lambda m: m[1], line)
        if self.ref_ids:
            line = _REF_LINK.sub(self._ref_link, line)
            line = _SHORTCUT_REF.sub(lambda m: m[1] if m[1].strip().lower() in self.ref_ids else m[0], line)
        return line

    def _ref_link(self, m: re.Match[str]) -> str:
        ref = (m[2] or m[1]).strip().lower()
        return m[1] if ref in self.ref_ids else m[0]

    def _strip_tags(self, line: str) -> str:
        if "<img" in line or "<IMG" in line:
            line = _HTML_IMG.sub(_img_alt, line)
        line = _BLOCK_TAG_RE.sub(" ", line)
        line = _INLINE_TAG_RE.sub("", line)
        return _JSX_TAG.sub("", line)


def _unescape(line: str) -> str:
    """Undo Markdown backslash escapes (``\\(``, ``1\\)``, ``\\*``) and drop a hard-break backslash.

    Code spans are already protected by placeholders.  A line indented by four spaces or a
    tab is most likely an indented code block (``docker run \\``), so it is left as written.
    """
    if line.startswith(("    ", "\t")) and not _LIST_ITEM.match(line):
        return line
    trailing = len(line) - len(line.rstrip("\\"))
    if trailing % 2:
        line = line[:-1]  # "text\\" at the end of a line is a hard line break, not a character
    pattern = _TABLE_ESCAPE if line.lstrip().startswith("|") else _BACKSLASH_ESCAPE
    return pattern.sub(lambda m: m[1], line)


def _drop_layout_lines(out: list[_Out]) -> None:
    """Thematic breaks and similar layout-only lines become empty lines (after setext headings
    were recognised), so a passage never ends in a stray ``---``; the line map is unchanged."""
    for o in out:
        if not o.code and o.text and _LAYOUT_ONLY.match(o.text):
            o.text = ""


def _img_alt(m: re.Match[str]) -> str:
    alt = _IMG_ALT.search(m[0])
    return f" {alt[1] or alt[2] or ''} " if alt else " "


def _clean(lines: list[str], first_src: int, mdx: bool) -> tuple[list[_Out], list[str]]:
    """Clean body lines; re-run when an HTML comment is never closed.

    A browser would hide everything after a stray ``<!--``, but for question
    answering losing the rest of an article to one typo is worse than
    showing the marker, so that one opener is treated as text.
    """
    literal: set[int] = set()
    notes: list[str] = []
    for _ in range(8):
        cleaner = _Cleaner(lines, first_src, mdx, frozenset(literal))
        out = cleaner.run()
        if not cleaner.st.comment_from:
            break
        notes.append(f"unclosed HTML comment on line {cleaner.st.comment_from}; kept its text")
        literal.add(cleaner.st.comment_from)
    else:
        notes.append(f"unclosed HTML comment on line {cleaner.st.comment_from}; rest of file dropped")
    return out, cleaner.warnings + notes


def _setext_to_atx(out: list[_Out]) -> None:
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


def _finish(out: list[_Out]) -> tuple[str, list[int]]:
    """Collapse blank runs outside code and drop leading/trailing blanks."""
    kept: list[_Out] = []
    for o in out:
        if not o.text and not o.code and (not kept or (not kept[-1].text and not kept[-1].code)):
            continue
        kept.append(o)
    while kept and not kept[-1].text:  # incl. the "" after a final newline inside an unclosed fence
        kept.pop()
    return "\n".join(o.text for o in kept), [o.src for o in kept]


# --------------------------------------------------------------------------- titles

_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.+?)\s*#*\s*$")


def _first_heading(out: list[_Out]) -> str | None:
    for o in out:
        if not o.code:
            m = _ATX.match(o.text)
            if m:
                title = re.sub(r"[*_`]+", "", m.group(2)).strip()
                if title:
                    return title
    return None


def _stem_title(path: Path) -> str:
    stem = path.stem
    if stem.lower() in ("index", "_index", "readme") and path.parent.name:
        return path.parent.name
    m = _JEKYLL_DATE.match(stem)
    return m.group(4) if m else stem


# --------------------------------------------------------------------------- public API


def _relpath(path: Path, root: Path) -> str:
    if path == root:
        return path.name
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return Path(os.path.relpath(path, root)).as_posix()


def _read(path: Path) -> bytes | str:
    """Raw bytes, or the Skipped reason when the file cannot be read."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return f"file too large ({size} bytes > {MAX_BYTES})"
        with open(path, "rb") as fh:
            return fh.read()
    except PermissionError:
        return "permission denied"
    except FileNotFoundError:
        return "file vanished before it could be read"
    except IsADirectoryError:
        return "is a folder, not a file"
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"


def load_document(path: Path, root: Path, data: bytes | None = None) -> Document | Skipped:
    """Read, decode and clean one article; never raises for a bad file.

    ``data`` lets a caller that already read the bytes (to hash them for
    incremental ingestion) avoid a second read that could see a newer file.
    """
    path, root = Path(path), Path(root)
    rel = _relpath(path, root)
    raw = _read(path) if data is None else data
    if isinstance(raw, str):
        return Skipped(rel, raw)
    try:
        text, encoding, decode_warnings = _decode(raw)
    except _Undecodable as exc:
        return Skipped(rel, str(exc))
    if _looks_binary(text):
        return Skipped(rel, "binary file")

    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_ODD_BREAKS)
    lines = text.split("\n")
    fm = _front_matter(lines)
    out, clean_warnings = _clean(lines[fm.body_start :], fm.body_start + 1, path.suffix.lower() == ".mdx")
    _setext_to_atx(out)
    _drop_layout_lines(out)
    body, line_map = _finish(out)

    meta = _normalise_meta(fm.data, path.stem)
    title = meta.pop("title", None) or _first_heading(out) or _stem_title(path)
    meta = {"title": title, **meta}
    return Document(
        path=rel,
        title=title,
        body=body,
        line_map=line_map,
        content_hash=sha256(raw).hexdigest(),
        meta=meta,
        encoding=encoding,
        warnings=decode_warnings + fm.warnings + clean_warnings,
    )


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _wanted(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def _collect(
    folder: Path,
    rel: str,
    root_real: Path,
    ancestors: frozenset[Path],
    follow: bool,
    found: list[tuple[str, Path | None, str | None]],
) -> None:
    """Gather ``(relative path, path, skip reason)`` for every candidate below ``folder``."""
    try:
        entries = list(os.scandir(folder))
    except PermissionError:
        found.append((rel or ".", None, "permission denied: cannot list folder"))
        return
    except OSError as exc:
        found.append((rel or ".", None, f"cannot list folder: {exc.strerror or exc}"))
        return
    for entry in entries:
        child_rel = f"{rel}/{entry.name}" if rel else entry.name
        child = folder / entry.name
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir()  # follows links; False for a dangling one
            is_file = entry.is_file()
        except OSError as exc:
            found.append((child_rel, None, f"cannot inspect: {exc.strerror or exc}"))
            continue
        # Nothing is left out silently: whatever is not read is reported with the reason.
        if _is_hidden(entry.name):
            if is_dir and not is_link:
                n = _count_files(child)
                found.append((child_rel + "/", None, f"hidden folder ({n} file{'s' if n != 1 else ''} not read)"))
            else:
                found.append((child_rel, None, "hidden file"))
            continue
        if not is_dir and not (_wanted(entry.name) and (is_file or is_link)):
            if is_link and not is_file:
                found.append((child_rel, None, "broken symlink"))
            elif not is_file:
                if os.path.lexists(child):  # gone since the listing: not under the root any more
                    found.append((child_rel, None, "not a regular file"))
            else:
                ext = Path(entry.name).suffix.lower() or "no extension"
                found.append((child_rel, None, f"unsupported file type ({ext})"))
            continue
        if is_link:
            if not follow:
                found.append((child_rel, None, "symlink not followed"))
                continue
            try:
                target = child.resolve(strict=True)
            except (OSError, RuntimeError):
                found.append((child_rel, None, "broken or looping symlink"))
                continue
            if not target.is_relative_to(root_real):
                found.append((child_rel, None, "symlink target outside the corpus root"))
                continue
            if is_dir and target in ancestors:
                found.append((child_rel, None, "symlink loop (points at a parent folder)"))
                continue
        if is_dir:
            real = child.resolve() if follow else child
            _collect(child, child_rel, root_real, ancestors | {real}, follow, found)
        else:
            found.append((child_rel, child, None))


def _count_files(folder: Path, cap: int = 1_000_000) -> int:
    """Files below a folder that is not read (a hidden one), for the report; links not followed."""
    n = 0
    for _, _, files in os.walk(folder):
        n += len(files)
        if n >= cap:
            break
    return n


def skipped_files(item: "Skipped") -> int:
    """How many files a Skipped entry stands for (a hidden folder counts its files)."""
    m = re.match(r"hidden folder \((\d+) file", item.reason)
    return int(m.group(1)) if m else 1


def iter_files(root: Path, follow_symlinks: bool = False) -> Iterator[tuple[Path, str] | Skipped]:
    """Yield ``(path, relative posix path)`` for every candidate article, or ``Skipped``.

    Split from ``iter_corpus`` so incremental ingestion can hash the bytes
    and only parse files that changed.  The whole tree is listed before
    anything is yielded, so the order is the plain sort of relative posix
    paths, independent of how the file system enumerates folders.  A missing
    ``root`` raises (that is a configuration error); anything wrong with an
    individual file or folder is yielded as ``Skipped``.
    """
    root = Path(root)
    if root.is_file():
        if _wanted(root.name):
            yield root, root.name
        else:
            yield Skipped(root.name, f"unsupported file type (expected one of {', '.join(SUFFIXES)})")
        return
    if not root.is_dir():
        raise FileNotFoundError(f"corpus root not found: {root}")
    root_real = root.resolve()
    found: list[tuple[str, Path | None, str | None]] = []
    _collect(root, "", root_real, frozenset({root_real}), follow_symlinks, found)
    found.sort(key=lambda item: item[0])
    for rel, path, reason in found:
        if reason is not None or path is None:
            yield Skipped(rel, reason or "unreadable")
        else:
            yield path, rel


def iter_corpus(root: Path, follow_symlinks: bool = False) -> Iterator[Document | Skipped]:
    """Yield every article under ``root`` (or ``root`` itself if it is a file) in sorted path order."""
    root = Path(root)
    base = root.parent if root.is_file() else root
    for item in iter_files(root, follow_symlinks=follow_symlinks):
        yield item if isinstance(item, Skipped) else load_document(item[0], base)
