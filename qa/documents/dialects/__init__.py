"""One small stripper module per dialect the corpus is written in.

``markdown`` (CommonMark itself: fences, code spans, links, escapes, setext headings), ``html``
(comments, script/style, tags, entities), ``liquid`` (Jekyll/Liquid and Hexo tags), ``hugo``
(shortcodes), ``kramdown`` (attribute lists, ``{:toc}``, heading ids) and ``mdx`` (imports, JSX,
``{/* */}`` comments).  Each module lists its line strippers in ``STRIPPERS``; the order they run
in is ``qa.documents.clean``'s business, and every one keeps the line contract written in
``qa.documents``: one line in, one line out.
"""

from qa.documents.dialects import hugo, html, kramdown, liquid, markdown, mdx

DIALECTS = (markdown, html, liquid, hugo, kramdown, mdx)

__all__ = ["DIALECTS", "hugo", "html", "kramdown", "liquid", "markdown", "mdx"]
