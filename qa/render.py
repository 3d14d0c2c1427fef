"""Answers as people read them: terminal, Markdown and plain text within a length limit."""

from __future__ import annotations

from qa.models import Answer


def render_terminal(ans: Answer, console) -> None:
    from rich.markup import escape

    style = "yellow" if ans.abstained or ans.status == "stub" else "bold"
    if ans.status == "stub":
        console.print("[yellow]✎ stub: the section exists but is not written yet[/]")
    console.print(f"[{style}]{escape(ans.answer)}[/]")
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


def render_markdown(ans: Answer, limit: int = 4000) -> str:
    """Markdown for chat platforms; sources are numbered links when a URL is known."""
    lines = [ans.answer]
    if ans.citations:
        lines.append("")
        lines.append("**Sources**")
        for c in ans.citations:
            label = f"{c.title} › {c.heading}" if c.heading else c.title
            where = f"{c.path}:{c.line_start}-{c.line_end}"
            lines.append(f"[{c.n}] [{label}]({c.url}) ({where})" if c.url else f"[{c.n}] {label} ({where})")
    return _fit("\n".join(lines), limit)


def render_text(ans: Answer, limit: int = 2000) -> str:
    lines = [ans.answer]
    for c in ans.citations:
        label = f"{c.title} > {c.heading}" if c.heading else c.title
        lines.append(f"[{c.n}] {label} ({c.path}:{c.line_start}-{c.line_end})")
    return _fit("\n".join(lines), limit)


def _fit(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"
