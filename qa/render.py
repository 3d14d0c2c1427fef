"""Answers as people read them: terminal, Markdown and plain text within a length limit."""

from __future__ import annotations

from qa.models import Answer


def render_terminal(ans: Answer, console) -> None:
    from rich.markup import escape

    from qa.chat import answer_text  # an LLM answer's unverified sentences carry a visible flag

    style = "yellow" if ans.abstained else "bold"
    console.print(f"[{style}]{escape(answer_text(ans))}[/]")
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
