"""Articles on disk -> clean ``Document`` objects.

The corpus is hand-written Chinese blog posts and docs (Jekyll/kramdown,
Hugo, Docusaurus/MDX, MkDocs).  Everything here is deliberately tolerant:
a single odd file must never stop ingestion, so problems become ``Skipped``
entries or ``Document.warnings`` instead of exceptions.

The stages, one module each: ``walk`` (which files, and why not the others),
``decode`` (bytes -> text), ``frontmatter`` (YAML/TOML block -> meta),
``clean`` (the body, line by line) with one stripper module per dialect in
``dialects/`` (Markdown, HTML, Liquid/Jekyll, Hugo, kramdown, MDX).

The line contract, which every stripper keeps
---------------------------------------------
Cleaning works line by line and never merges or splits lines, so every body
line can be traced back to the source line it came from (``line_map``); that
is what lets answers cite "file.md:56".  A stripper is called with one source
line (no line break in it) and returns one line (no line break in it: not
``\\n``, not ``\\r``); it may only shorten, rewrite or empty that line.  A
construct spanning lines (a comment, a script, a code fence) is tracked in
``clean.State``, and a line wholly inside it becomes an empty line, not a
missing one.  So the cleaner emits exactly one line per source line; a source
line whose content is all noise becomes an empty line first; runs of empty
lines are then collapsed, and ``line_map`` is built from what survives.
``tests/test_documents.py::test_every_stripper_keeps_lines`` holds every
stripper to this.
"""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path
from typing import Iterator

from qa.documents.clean import clean_body
from qa.documents.decode import Undecodable, decode, looks_binary, split_lines
from qa.documents.dialects.markdown import first_heading
from qa.documents.document import Document, Skipped
from qa.documents.frontmatter import JEKYLL_DATE, normalise_meta, parse_front_matter
from qa.documents.walk import MAX_BYTES, SUFFIXES, iter_files, read_bytes, relpath, skipped_files

__all__ = [
    "MAX_BYTES",
    "SUFFIXES",
    "Document",
    "Skipped",
    "iter_corpus",
    "iter_files",
    "load_document",
    "skipped_files",
]


def load_document(path: Path, root: Path, data: bytes | None = None) -> Document | Skipped:
    """Read, decode and clean one article; never raises for a bad file.

    ``data`` lets a caller that already read the bytes (to hash them for
    incremental ingestion) avoid a second read that could see a newer file.
    """
    path, root = Path(path), Path(root)
    rel = relpath(path, root)
    raw = read_bytes(path) if data is None else data
    if isinstance(raw, str):
        return Skipped(rel, raw)
    try:
        text, encoding, decode_warnings = decode(raw)
    except Undecodable as exc:
        return Skipped(rel, str(exc))
    if looks_binary(text):
        return Skipped(rel, "binary file")

    lines = split_lines(text)
    fm = parse_front_matter(lines)
    cleaned = clean_body(lines[fm.body_start :], fm.body_start + 1, path.suffix.lower() == ".mdx")

    meta = normalise_meta(fm.data, path.stem)
    title = meta.pop("title", None) or first_heading(cleaned.out) or _stem_title(path)
    meta = {"title": title, **meta}
    return Document(
        path=rel,
        title=title,
        body=cleaned.body,
        line_map=cleaned.line_map,
        content_hash=sha256(raw).hexdigest(),
        meta=meta,
        encoding=encoding,
        warnings=decode_warnings + fm.warnings + cleaned.warnings,
    )


def _stem_title(path: Path) -> str:
    stem = path.stem
    if stem.lower() in ("index", "_index", "readme") and path.parent.name:
        return path.parent.name
    m = JEKYLL_DATE.match(stem)
    return m.group(4) if m else stem


def iter_corpus(root: Path, follow_symlinks: bool = False) -> Iterator[Document | Skipped]:
    """Yield every article under ``root`` (or ``root`` itself if it is a file) in sorted path order."""
    root = Path(root)
    base = root.parent if root.is_file() else root
    for item in iter_files(root, follow_symlinks=follow_symlinks):
        yield item if isinstance(item, Skipped) else load_document(item[0], base)
