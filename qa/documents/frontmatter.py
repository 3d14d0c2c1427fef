"""Front matter: a leading YAML (``---``) or TOML (``+++``) block, parsed tolerantly, and the
meta it yields normalised to JSON-able values (title, date, categories, tags, permalink, …).

Broken front matter never costs the article its body: a block that does not parse has its
simple ``key: value`` lines salvaged, and a ``---`` block of prose stays body.
"""

from __future__ import annotations

import datetime as _dt
import re
import tomllib
from dataclasses import dataclass
from typing import Any

import yaml

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAMLISH_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*:(\s|$)")
_SALVAGE = re.compile(
    r"^(title|date|slug|url|permalink|description|summary|categories|category|tags|tag)\s*:\s*(.*?)\s*$"
)


@dataclass
class FrontMatter:
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


def parse_front_matter(lines: list[str]) -> FrontMatter:
    start = _skip_leading_comments(lines)
    if start >= len(lines):
        return FrontMatter({}, 0, [])
    opener = lines[start].rstrip()
    if opener not in ("---", "+++"):
        return FrontMatter({}, 0, [])
    fmt = "toml" if opener == "+++" else "yaml"
    closers = ("+++",) if fmt == "toml" else ("---", "...")
    end = next((j for j in range(start + 1, len(lines)) if lines[j].rstrip() in closers), None)
    if end is None:
        return _unclosed_front_matter(lines, start, fmt)

    block = lines[start + 1 : end]
    data, error = _parse_block("\n".join(block), fmt)
    if isinstance(data, dict):
        return FrontMatter(data, end + 1, [])
    if data is None and error is None:  # "---\n---": empty front matter
        return FrontMatter({}, end + 1, [])
    looks_like_fm = any(_YAMLISH_KEY.match(b) for b in block)
    where = f"lines {start + 1}-{end + 1}"
    if not looks_like_fm:
        # "---" used as a horizontal rule around prose: Jekyll would eat it,
        # but the text is content, so it stays in the body.
        return FrontMatter({}, 0, [f"{where}: '{opener}' block is not front matter; kept as body"])
    why = f"malformed {fmt.upper()} front matter ({error})" if error else f"{fmt.upper()} front matter is not a mapping"
    return FrontMatter(_salvage(block), end + 1, [f"{where}: {why}; salvaged simple key: value lines"])


def _unclosed_front_matter(lines: list[str], start: int, fmt: str) -> FrontMatter:
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
        return FrontMatter(
            data,
            j,
            [f"unclosed front matter (line {opener_line} has no closing delimiter); "
             f"used lines {opener_line + 1}-{j} as front matter, rest kept as body"],
        )
    return FrontMatter(
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


JEKYLL_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(.+)$")
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


def normalise_meta(raw: dict[str, Any], stem: str) -> dict[str, Any]:
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
        m = JEKYLL_DATE.match(stem)  # Jekyll posts carry their date in the file name
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
