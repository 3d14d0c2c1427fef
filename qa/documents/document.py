"""What the loader hands on: a cleaned ``Document``, or a ``Skipped`` file with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field


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
