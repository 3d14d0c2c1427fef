"""Answers as people read them: the terminal, and (through :mod:`qa.chat`, the one renderer of
chat dialects) Markdown and plain text within a length limit."""

from __future__ import annotations

from qa.responses import Answer


def render_terminal(ans: Answer, console) -> None:
    from rich.markup import escape as markup_escape

    from qa.chat import answer_text  # an LLM answer's unverified sentences carry a visible flag
    from qa.safetext import printable

    def escape(text: str, keep: str = "") -> str:  # article text: no markup, no terminal escapes
        return markup_escape(printable(text, keep))

    style = "yellow" if ans.abstained or ans.status == "stub" else "bold"
    if ans.status == "stub":
        console.print("[yellow]✎ stub: the section exists but is not written yet[/]")
    console.print(f"[{style}]{escape(answer_text(ans), keep=chr(10))}[/]")
    if ans.citations:
        console.print()
        console.print("[dim]Sources:[/]")
    for c in ans.citations:
        flag = " [dim](low confidence)[/]" if c.low_confidence else ""
        console.print(
            f"  [cyan][{c.n}][/] {escape(c.title)} — {escape(c.heading) or '(top)'}{flag}\n"
            f"      {escape(c.path)}:{c.line_start}-{c.line_end}"
            + (f"  {escape(c.url)}" if c.url else "")
        )
    console.print(f"[dim]{ans.took_ms:.0f} ms · {ans.index.generation} · {ans.index.model}[/]")
    if ans.writer == "llm":
        console.print(f"[dim]written by the LLM; {ans.verified_share or 0:.0%} of sentences verified[/]")
    elif ans.writer_fallback_reason:
        console.print(f"[dim]quoted answer; the LLM was not used: {escape(ans.writer_fallback_reason)}[/]")


def render_markdown(ans: Answer, limit: int = 4000) -> str:
    """Markdown for chat platforms: the chat layer's renderer (escaping, numbered sources, fitting)."""
    from qa.chat import MARKDOWN, render

    return render(ans, MARKDOWN, limit).text


def render_text(ans: Answer, limit: int = 2000) -> str:
    """Plain text (no markup) within ``limit`` characters."""
    from qa.chat import TEXT, render

    return render(ans, TEXT, limit).text
