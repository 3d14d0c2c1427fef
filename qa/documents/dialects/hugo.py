"""Hugo shortcodes: ``{{< name args >}}`` and ``{{% name %}}`` go; an escaped one written to be
shown (``{{</* name */>}}``) is kept as the shortcode it displays."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from qa.documents.clean import State

_SHORTCODE = re.compile(r"\{\{<.*?>\}\}|\{\{%.*?%\}\}")
_ESCAPED_SHORTCODE = re.compile(r"\{\{([<%])/\*\s*(.*?)\s*\*/([>%])\}\}")


def protect_escaped(line: str, protect: Callable[[str], str]) -> str:
    """Replace each escaped shortcode by ``protect(shortcode as displayed)`` (a placeholder)."""
    if "{{" in line and "/*" in line:
        line = _ESCAPED_SHORTCODE.sub(lambda m: protect(f"{{{{{m[1]} {m[2]} {m[3]}}}}}"), line)
    return line


def strip_shortcodes(line: str, st: State) -> str:
    return _SHORTCODE.sub("", line)


STRIPPERS = (strip_shortcodes,)
