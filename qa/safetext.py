"""Text that came from outside (file names, URL paths, article titles) made safe for a terminal or log line.

A file name or a request path may hold control characters: an ESC starts a terminal escape
sequence (colours, cursor moves, window titles), a newline starts what looks like a new report
or log line. :func:`printable` writes each of them as a visible escape (``\\x1b``, ``\\n``), so
what is printed is exactly one line that shows what the name really contains. JSON output
needs none of this: ``json.dumps`` escapes them already.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def printable(text: object, keep: str = "") -> str:
    """``text`` with every control character written as a visible escape (except those in ``keep``,
    e.g. ``"\n"`` for an answer that is several lines by design)."""
    s = str(text)
    if not _CONTROL.search(s):
        return s
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _escape(m), s)
