"""The gap report as one self-contained HTML page (``qa gaps --html``, ``GET /admin/gaps``).

Questions are hostile input: every value from the log goes through :func:`e` (``html.escape``
with quotes), numbers are formatted by us, and the page allows no script at all (its own
Content-Security-Policy meta tag; the server sends the same policy as a header). No CDN, no
external file: the chart is inline SVG, the styles one ``<style>`` block.
"""

from __future__ import annotations

import html
import time

from qa.gaps import GapReport, Group, describe

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

STYLE = """
:root { color-scheme: light dark; --fg: #1d2430; --muted: #5b6575; --line: #d9dee7; --bg: #fff; --card: #f6f8fb;
  --gap: #b42318; --stub: #b54708; --ok: #067647; --accent: #2950a8; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e9ef; --muted: #a3acba; --line: #394150; --bg: #14171c;
  --card: #1c2027; --gap: #f97066; --stub: #fdb022; --ok: #47cd89; --accent: #84adff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif;
  color: var(--fg); background: var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; } h2 { font-size: 1.15rem; margin: 32px 0 10px; }
.sub, .muted { color: var(--muted); } .sub { margin: 0 0 16px; }
.kpis { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0 4px; padding: 0; list-style: none; }
.kpis li { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; }
.kpis b { display: block; font-size: 1.3rem; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; vertical-align: top; padding: 8px 10px; border-bottom: 1px solid var(--line); }
th { font-size: .85rem; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; }
.topic { font-weight: 600; } .line { margin: 2px 0 6px; }
.ex { margin: 4px 0 0; padding-left: 18px; } .ex li { margin: 1px 0; word-break: break-word; }
.bar { display: flex; height: 8px; width: 120px; border-radius: 4px; overflow: hidden; background: var(--line); margin-top: 6px; }
.bar span { display: block; height: 100%; }
.s-answered { background: var(--ok); } .s-not_covered { background: var(--gap); } .s-stub { background: var(--stub); }
.verdict { display: inline-block; font-size: .8rem; padding: 1px 8px; border-radius: 10px; border: 1px solid currentColor; }
.v-nothing { color: var(--gap); } .v-stub { color: var(--stub); } .v-weak { color: var(--stub); } .v-covered { color: var(--ok); }
code { font: .85rem ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
.chart { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
.chart svg { width: 100%; height: auto; display: block; }
.empty { color: var(--muted); font-style: italic; }
blockquote { margin: 4px 0; padding-left: 10px; border-left: 3px solid var(--line); }
"""


def e(value) -> str:
    """Every dynamic value goes through here: text, never markup."""
    return html.escape("" if value is None else str(value), quote=True)


def _date(ts: float, with_time: bool = False) -> str:
    return time.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d", time.gmtime(ts))


def chart_svg(report: GapReport, width: int = 720, height: int = 180) -> str:
    """The not-covered rate per day (or week) as a plain SVG line with a 0–100 % axis."""
    pts = report.timeline
    if not pts:
        return '<p class="empty">no questions in this period</p>'
    left, right, top, bottom = 44, 12, 12, 28
    w, h = width - left - right, height - top - bottom
    n = len(pts)
    xs = [left + (w * i / (n - 1) if n > 1 else w / 2) for i in range(n)]
    ys = [top + h * (1 - p.rate) for p in pts]
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">not-covered rate per {e(report.bucket)}</title>',
    ]
    for frac in (0, 0.25, 0.5, 0.75, 1):
        y = top + h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" stroke-opacity="0.15"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="currentColor" fill-opacity="0.7">{int(frac * 100)}%</text>')
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    parts.append(f'<polyline points="{path}" fill="none" stroke="#d92d20" stroke-width="2"/>')
    for x, y, p in zip(xs, ys, pts):
        label = f"{_date(p.start)}: {p.not_covered}/{p.total} not covered ({p.rate:.0%})"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#d92d20"><title>{e(label)}</title></circle>')
    ticks = sorted({0, n - 1, *range(0, n, max(1, n // 6))})
    for i in ticks:
        parts.append(f'<text x="{xs[i]:.1f}" y="{height - 8}" font-size="11" text-anchor="middle" fill="currentColor" fill-opacity="0.7">{e(_date(pts[i].start)[5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _status_bar(statuses: dict[str, int]) -> str:
    total = sum(statuses.values()) or 1
    spans = "".join(
        f'<span class="s-{e(s)}" style="width:{100 * statuses.get(s, 0) / total:.1f}%"></span>'
        for s in ("answered", "stub", "not_covered") if statuses.get(s)
    )
    label = ", ".join(f"{e(k)} {v}" for k, v in sorted(statuses.items()))
    return f'<div class="bar" role="img" aria-label="{label}" title="{label}">{spans}</div><div class="muted">{label}</div>'


_VERDICT_CLASS = {"nothing near": "v-nothing", "only a stub": "v-stub", "weak match": "v-weak", "covered": "v-covered"}


def _group_row(g: Group) -> str:
    near = ""
    if g.nearest is not None:
        n = g.nearest
        near = (f'<div><code>{e(n.path)}:{n.line_start}</code></div>'
                f'<div class="muted">{e(n.title)}{" › " + e(n.heading) if n.heading else ""} · {n.confidence:.2f}</div>')
    examples = "".join(f"<li>{e(x)}</li>" for x in g.examples)
    votes = f'<div class="muted">{g.down_votes} down · {g.up_votes} up</div>' if g.down_votes or g.up_votes else ""
    return (
        "<tr>"
        f'<td><div class="topic">{e(g.name)}</div><p class="line">{e(describe(g))}</p><ul class="ex">{examples}</ul></td>'
        f'<td class="num">{g.count}<div class="muted">{g.distinct} distinct</div></td>'
        f"<td>{_status_bar(g.statuses)}{votes}</td>"
        f'<td><span class="verdict {_VERDICT_CLASS.get(g.verdict, "")}">{e(g.verdict)}</span>{near}</td>'
        "</tr>"
    )


def _source(s: dict) -> str:
    line = (s.get("lines") or [0])[0]
    heading = f' <span class="muted">{e(s.get("heading"))}</span>' if s.get("heading") else ""
    return f"<div><code>{e(s.get('path'))}:{e(line)}</code>{heading}</div>"


def _down_row(d) -> str:
    comments = "".join(f"<blockquote>{e(c)}</blockquote>" for c in d.comments)
    sources = "".join(_source(s) for s in d.sources[:3]) or '<span class="empty">no sources</span>'
    ups = f" · {d.up} up" if d.up else ""
    return (
        f"<tr><td>{e(d.question)}{comments}</td>"
        f'<td class="num">{d.down} down{ups}</td>'
        f'<td>{e(d.status)} · {d.confidence:.2f}<div class="muted">{e(_date(d.ts, True))}</div></td>'
        f"<td>{sources}</td></tr>"
    )


def render_html(report: GapReport, title: str = "What the articles don't cover yet") -> str:
    r = report
    total = r.questions or 1
    nc = r.statuses.get("not_covered", 0)
    stub = r.statuses.get("stub", 0)
    kpis = (
        f"<li><b>{r.questions}</b>questions</li>"
        f"<li><b>{nc / total:.0%}</b>not covered ({nc})</li>"
        f"<li><b>{stub}</b>answered from a stub</li>"
        f"<li><b>{r.votes.get('down', 0)}</b>votes down</li>"
        f"<li><b>{r.votes.get('up', 0)}</b>votes up</li>"
        f"<li><b>{r.groups_total}</b>topics</li>"
    )
    groups = "".join(_group_row(g) for g in r.groups) or '<tr><td colspan="4" class="empty">no questions yet</td></tr>'
    down = "".join(_down_row(d) for d in r.down_voted) or '<tr><td colspan="4" class="empty">no down-voted answers</td></tr>'
    stubs = "".join(
        "<tr>"
        f"<td><code>{e(s.where)}</code><div class=\"muted\">{e(s.title)}{' › ' + e(s.heading) if s.heading else ''}</div></td>"
        f'<td class="num">{s.hits}</td>'
        f"<td><ul class=\"ex\">{''.join(f'<li>{e(q)}</li>' for q in s.examples)}</ul></td>"
        "</tr>"
        for s in r.stubs
    ) or '<tr><td colspan="3" class="empty">no stub was hit</td></tr>'
    names = "".join(
        "<tr>"
        f"<td><code>{e(m.name)}</code></td>"
        f'<td class="num">{m.count}</td>'
        f"<td><ul class=\"ex\">{''.join(f'<li>{e(q)}</li>' for q in m.examples)}</ul></td>"
        "</tr>"
        for m in r.unmentioned
    ) or '<tr><td colspan="3" class="empty">every name asked about is mentioned somewhere</td></tr>'
    period = f"{_date(r.since)} – {_date(r.until)}"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>{e(title)}</h1>
<p class="sub">{e(period)} · index {e(r.index_generation or "not found")} · generated {e(_date(r.generated_at, True))} UTC in {r.took_ms:.0f} ms</p>
<ul class="kpis">{kpis}</ul>

<h2 id="rate">Not-covered rate per {e(r.bucket)}</h2>
<div class="chart">{chart_svg(r)}</div>

<h2 id="topics">Topics people asked about, most unanswered first</h2>
<p class="muted">Questions grouped by meaning; the nearest indexed section is what a search for the topic finds.
Showing {len(r.groups)} of {r.groups_total} topics.</p>
<table>
<thead><tr><th scope="col">topic and example questions</th><th scope="col" class="num">asked</th><th scope="col">answers</th><th scope="col">nearest section</th></tr></thead>
<tbody>{groups}</tbody>
</table>

<h2 id="down">Answers voted down</h2>
<table>
<thead><tr><th scope="col">question and comments</th><th scope="col" class="num">votes</th><th scope="col">answer</th><th scope="col">cited passages</th></tr></thead>
<tbody>{down}</tbody>
</table>

<h2 id="stubs">Stub sections, by how often answers hit them</h2>
<table>
<thead><tr><th scope="col">section</th><th scope="col" class="num">hits</th><th scope="col">questions</th></tr></thead>
<tbody>{stubs}</tbody>
</table>

<h2 id="names">Names asked about that no article mentions</h2>
<table>
<thead><tr><th scope="col">name</th><th scope="col" class="num">not covered</th><th scope="col">questions</th></tr></thead>
<tbody>{names}</tbody>
</table>
</main>
</body>
</html>
"""


__all__ = ["render_html", "chart_svg", "CSP", "e"]
