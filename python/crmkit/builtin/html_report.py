"""A report as one self-contained HTML page with inline SVG charts.

:func:`render_html` turns a :class:`crmkit.kinds.Report` into a page that
needs nothing else: the style sheet is inline, the charts are SVG drawn here
(bar, line, heat map, funnel, cohort triangle, chosen by :attr:`Table.chart`;
see :mod:`crmkit.reports` for the table shape each expects), there is no
script, and a Content-Security-Policy forbids every fetch, so opening the file
makes no network request.

The page reads on a phone (fluid layout, charts scale, wide tables scroll),
prints cleanly (no navigation, charts kept whole, colours kept) and stays
accessible: each chart is an ``img`` with a title and a description, and the
numbers it draws follow it as a table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from html import escape
from typing import Any

from crmkit.kinds import Report, Table

PALETTE: tuple[str, ...] = (
    "#2f6fb0",
    "#e07b28",
    "#3a9a5b",
    "#c8413b",
    "#7d5ba6",
    "#8c6239",
    "#d45fa5",
    "#6b7280",
)
"""Series colours, in order (distinguishable for the common colour blindnesses)."""

HEAT_LOW = (238, 243, 250)
HEAT_HIGH = (22, 78, 148)
"""The two ends of the heat map scale (RGB)."""

WIDTH = 520
"""Width of a chart's view box in a half-width card; charts scale to their container."""

WIDE = 960
"""Width of a chart's view box in a full-width card."""

MAX_BARS = 30
"""Bars drawn at most per bar chart; the table keeps every row."""

_FUNNEL_COLOURS = {
    "bounced": "#e07b28",
    "complained": "#c8413b",
    "failed": "#c8413b",
    "converted": "#3a9a5b",
}

_CSS = """
:root{--fg:#1f2933;--muted:#5f6b7a;--bg:#f6f7f9;--card:#fff;--line:#d9dee5;--grid:#e6e9ee;
--accent:#2f6fb0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);line-height:1.45;font-size:16px}
header{padding:24px 16px 8px;max-width:1100px;margin:0 auto}
header h1{margin:0 0 4px;font-size:1.6rem}
header p{margin:0;color:var(--muted);font-size:.9rem}
nav{max-width:1100px;margin:8px auto 0;padding:0 16px}
nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:6px}
nav a{display:inline-block;padding:4px 10px;border:1px solid var(--line);border-radius:999px;
color:var(--accent);text-decoration:none;font-size:.85rem;background:var(--card)}
nav a:focus,nav a:hover{background:var(--accent);color:#fff}
main{max-width:1100px;margin:0 auto;padding:8px 16px 32px}
section h2{font-size:1.3rem;margin:28px 0 8px;border-bottom:2px solid var(--line);padding-bottom:4px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));gap:16px}
article{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;
min-width:0}
article.wide{grid-column:1/-1}
article h3{margin:0 0 8px;font-size:1.05rem}
figure{margin:0 0 10px}
.chart{overflow-x:auto}
.chart svg{display:block;width:100%;height:auto;min-width:300px}
.only-narrow{display:none}
svg text{font-family:inherit;fill:var(--fg)}
svg .axis{stroke:var(--line);stroke-width:1}
svg .gridline{stroke:var(--grid);stroke-width:1}
svg .muted{fill:var(--muted)}
svg .on-dark{fill:#fff}
.note{color:var(--muted);font-size:.85rem;margin:6px 0 8px}
.empty{color:var(--muted);font-style:italic;margin:4px 0}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:.85rem;margin:4px 0 0;padding:0;list-style:none}
.legend li::before{content:"";display:inline-block;width:.8em;height:.8em;border-radius:2px;
margin-right:5px;vertical-align:-1px;background:var(--c)}
.table-wrap{overflow-x:auto;max-height:420px;overflow-y:auto;border:1px solid var(--grid);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:.85rem}
caption{position:absolute;left:-9999px}
th,td{padding:4px 8px;border-bottom:1px solid var(--grid);text-align:left;white-space:nowrap}
thead th{background:#f0f2f5;position:sticky;top:0}
tbody th{font-weight:500}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
@media (max-width:700px){.only-wide{display:none}.only-narrow{display:block}}
@media (max-width:600px){body{font-size:15px}header h1{font-size:1.3rem}
article{padding:10px}main{padding:4px 8px 24px}}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ee;--muted:#a3adba;--bg:#111418;--card:#1a1f25;
--line:#333b45;--grid:#2a3038;--accent:#79a9e0}thead th{background:#222830}}
@media print{:root{--fg:#000;--muted:#444;--bg:#fff;--card:#fff;--line:#bbb;--grid:#ddd}
body{font-size:11pt;-webkit-print-color-adjust:exact;print-color-adjust:exact}
nav{display:none}header,main{max-width:none;padding-left:0;padding-right:0}
.grid{display:block}article{break-inside:avoid;page-break-inside:avoid;border:none;border-top:1px solid #bbb;
border-radius:0;padding:8px 0;margin:0 0 10px}
section h2{break-after:avoid}.table-wrap{max-height:none;overflow:visible;border:none}
th{position:static}.chart{overflow:visible}.only-wide{display:block}.only-narrow{display:none}.chart svg{min-width:0;max-width:17cm}}
"""


# -- values --------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def fmt(value: Any) -> str:
    """A cell as display text: grouped thousands, at most two decimals, ``–`` for none."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        f = float(value)
        if not math.isfinite(f):
            return str(f)
        if f == int(f) and abs(f) < 1e15:
            return f"{int(f):,}"
        return f"{f:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def _short(value: float) -> str:
    """An axis label: 1.2k, 3.4M."""
    a = abs(value)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{value / div:.3g}{suffix}"
    return f"{value:.3g}"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round axis ticks spanning ``lo``..``hi`` (both included)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t < hi + step * 0.999:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _numeric_columns(table: Table) -> list[int]:
    out = []
    for i in range(1, len(table.columns)):
        values = [r[i] for r in table.rows if i < len(r) and r[i] is not None]
        if values and all(_number(v) is not None for v in values):
            out.append(i)
    return out


def _series(table: Table, default: str) -> list[int]:
    """Column indices a chart plots: ``chart_columns``, else the chart's default."""
    numeric = _numeric_columns(table)
    if table.chart_columns:
        want = [table.columns.index(c) for c in table.chart_columns if c in table.columns]
        return [i for i in want if i in numeric]
    if default == "first":
        return numeric[:1]
    return numeric


def _heat(t: float) -> str:
    t = min(1.0, max(0.0, t))
    r, g, b = (round(lo + (hi - lo) * t) for lo, hi in zip(HEAT_LOW, HEAT_HIGH, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


class _Svg:
    """An SVG document being written, with its accessible title and description."""

    def __init__(self, uid: str, width: int, title: str, desc: str) -> None:
        self.uid = uid
        self.width = width
        self.title = title
        self.desc = desc
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def text(
        self, x: float, y: float, s: str, *, anchor: str = "start", cls: str = "", size: int = 12
    ) -> None:
        c = f' class="{cls}"' if cls else ""
        self.add(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{c}>{escape(s)}</text>'
        )

    def done(self, height: float) -> str:
        head = (
            f'<svg viewBox="0 0 {self.width} {height:.0f}" style="max-width:{self.width * 1.2:.0f}px" '
            f'role="img" aria-labelledby="{self.uid}-t {self.uid}-d" preserveAspectRatio="xMinYMin meet">'
            f'<title id="{self.uid}-t">{escape(self.title)}</title>'
            f'<desc id="{self.uid}-d">{escape(self.desc)}</desc>'
        )
        return head + "".join(self.parts) + "</svg>"


def _legend(names: Sequence[str]) -> str:
    if len(names) < 2:
        return ""
    items = "".join(
        f'<li style="--c:{PALETTE[i % len(PALETTE)]}">{escape(n)}</li>' for i, n in enumerate(names)
    )
    return f'<ul class="legend" aria-hidden="true">{items}</ul>'


# -- charts --------------------------------------------------------------------------------


def bar_chart(table: Table, uid: str, width: int = WIDTH) -> str | None:
    """Horizontal bars: one group per row, one bar per series column."""
    cols = _series(table, "first")
    rows = [r for r in table.rows if any(_number(r[i]) is not None for i in cols)][:MAX_BARS]
    if not cols or not rows:
        return None
    values = [_number(r[i]) or 0.0 for r in rows for i in cols]
    lo, hi = min(0.0, *values), max(0.0, *values)
    if hi == lo:
        hi = lo + 1.0
    labels = [_clip(str(r[0]) if r[0] is not None else "–", 26) for r in rows]
    label_w = min(200, 14 + 7 * max(len(x) for x in labels))
    plot_l, plot_r = label_w, width - 70
    group_h = 8 + 16 * len(cols) if len(cols) > 1 else 24
    top = 8
    height = top + group_h * len(rows) + 24
    names = [table.columns[i] for i in cols]
    svg = _Svg(
        uid,
        width,
        f"Bar chart: {table.title}",
        f"{', '.join(names)} by {table.columns[0]} for {len(rows)} rows; the table below holds the numbers.",
    )

    def x(v: float) -> float:
        return plot_l + (v - lo) / (hi - lo) * (plot_r - plot_l)

    for t in _nice_ticks(lo, hi, 4):
        if lo <= t <= hi:
            svg.add(
                f'<line class="gridline" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{height - 20}"/>'
            )
            svg.text(x(t), height - 6, _short(t), anchor="middle", cls="muted", size=11)
    bar_h = (group_h - 8) / len(cols) if len(cols) > 1 else 16
    for gi, (r, label) in enumerate(zip(rows, labels, strict=True)):
        gy = top + gi * group_h
        svg.text(label_w - 8, gy + group_h / 2 + 4, label, anchor="end")
        for si, ci in enumerate(cols):
            v = _number(r[ci])
            if v is None:
                continue
            y = gy + 4 + si * bar_h
            x0, x1 = sorted((x(0.0), x(v)))
            colour = PALETTE[si % len(PALETTE)]
            svg.add(
                f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 1.0):.1f}" height="{bar_h - 2:.1f}" '
                f'fill="{colour}" rx="2"><title>{escape(f"{r[0]}: {table.columns[ci]} {fmt(r[ci])}")}</title></rect>'
            )
            svg.text(x1 + 4, y + bar_h / 2 + 3, fmt(r[ci]), size=11, cls="muted")
    svg.add(
        f'<line class="axis" x1="{x(0.0):.1f}" x2="{x(0.0):.1f}" y1="{top}" y2="{height - 20}"/>'
    )
    return svg.done(height) + _legend(names)


def line_chart(table: Table, uid: str, width: int = WIDTH) -> str | None:
    """Lines over ordered x labels (the first column), one per series column."""
    cols = _series(table, "all")
    rows = table.rows
    if not cols or not rows:
        return None
    values = [v for r in rows for i in cols if (v := _number(r[i])) is not None]
    if not values:
        return None
    lo, hi = min(values), max(values)
    lo = min(lo, 0.0) if lo >= 0 else lo
    ticks = _nice_ticks(lo, hi if hi > lo else lo + 1.0, 5)
    lo, hi = ticks[0], ticks[-1]
    plot_l, plot_r, top, bottom = 56, width - 36, 12, 250
    height = bottom + 34
    n = len(rows)
    names = [table.columns[i] for i in cols]
    svg = _Svg(
        uid,
        width,
        f"Line chart: {table.title}",
        f"{', '.join(names)} over {n} {table.columns[0]} values, from {rows[0][0]} to {rows[-1][0]}; "
        "the table below holds the numbers.",
    )

    def x(i: int) -> float:
        return (plot_l + plot_r) / 2 if n == 1 else plot_l + i * (plot_r - plot_l) / (n - 1)

    def y(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    for t in ticks:
        svg.add(
            f'<line class="gridline" x1="{plot_l}" x2="{plot_r}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
        )
        svg.text(plot_l - 6, y(t) + 4, _short(t), anchor="end", cls="muted", size=11)
    svg.add(f'<line class="axis" x1="{plot_l}" x2="{plot_r}" y1="{bottom}" y2="{bottom}"/>')
    step = max(1, math.ceil(n / (8 if width < WIDE else 12)))
    shown = list(range(n - 1, -1, -step))[::-1]
    for i in shown:
        svg.text(
            x(i), bottom + 18, _clip(str(rows[i][0]), 12), anchor="middle", cls="muted", size=11
        )
    for si, ci in enumerate(cols):
        colour = PALETTE[si % len(PALETTE)]
        runs: list[list[tuple[float, float]]] = [[]]
        for i, r in enumerate(rows):
            v = _number(r[ci])
            if v is None:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append((x(i), y(v)))
        for pts in runs:
            if len(pts) > 1:
                path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
                svg.add(
                    f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5" '
                    'stroke-linejoin="round" stroke-linecap="round"/>'
                )
        if n <= 60:
            for i, r in enumerate(rows):
                v = _number(r[ci])
                if v is None:
                    continue
                svg.add(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.2" fill="{colour}">'
                    f"<title>{escape(f'{r[0]}: {table.columns[ci]} {fmt(r[ci])}')}</title></circle>"
                )
    return svg.done(height) + _legend(names)


def _grid(
    table: Table,
    uid: str,
    width: int,
    *,
    kind: str,
    label_cols: int,
    scale_from: int,
    zero_based: bool,
) -> str | None:
    """A grid of coloured cells: the heat map and the cohort triangle."""
    rows = table.rows
    cells_from = label_cols
    ncols = len(table.columns) - cells_from
    if not rows or ncols <= 0:
        return None
    scale = [
        v
        for r in rows
        for j, cell in enumerate(r[cells_from:])
        if j >= scale_from and (v := _number(cell)) is not None
    ]
    if not scale:
        scale = [v for r in rows for c in r[cells_from:] if (v := _number(c)) is not None]
    if not scale:
        return None
    vmax = max(scale)
    vmin = min(min(scale), 0.0) if zero_based else min(scale)
    spread = (vmax - vmin) or 1.0
    label_w = min(150, 12 + 7 * max(len(str(r[0])) for r in rows))
    extra_w = 70 if label_cols > 1 else 0
    avail = width - label_w - extra_w - 8
    cw = max(18.0, min(110.0 if width >= WIDE else 72.0, avail / ncols))
    ch = 26.0
    top = 26.0
    height = top + ch * len(rows) + 8
    svg = _Svg(
        uid,
        width,
        f"{kind}: {table.title}",
        f"{len(rows)} rows by {ncols} columns, darker is higher (from {fmt(vmin)} to {fmt(vmax)}); "
        "the table below holds the numbers.",
    )
    x0 = label_w + extra_w
    small = cw < 40
    for j, col in enumerate(table.columns[cells_from:]):
        label = col.replace("month ", "") if kind == "Cohort triangle" else col
        svg.text(
            x0 + j * cw + cw / 2,
            top - 8,
            _clip(label, max(3, int(cw / 7))),
            anchor="middle",
            cls="muted",
            size=11,
        )
    if extra_w:
        svg.text(
            label_w + extra_w - 8,
            top - 8,
            _clip(table.columns[1], 10),
            anchor="end",
            cls="muted",
            size=11,
        )
    for i, r in enumerate(rows):
        y = top + i * ch
        svg.text(label_w - 8, y + ch / 2 + 4, _clip(str(r[0]), 20), anchor="end")
        if extra_w:
            svg.text(
                label_w + extra_w - 8, y + ch / 2 + 4, fmt(r[1]), anchor="end", cls="muted", size=11
            )
        for j, cell in enumerate(r[cells_from:]):
            v = _number(cell)
            if v is None:
                continue
            t = (v - vmin) / spread
            svg.add(
                f'<rect x="{x0 + j * cw + 1:.1f}" y="{y + 1:.1f}" width="{cw - 2:.1f}" height="{ch - 2:.1f}" '
                f'fill="{_heat(t)}" rx="2"><title>{escape(f"{r[0]}, {table.columns[cells_from + j]}: {fmt(cell)}")}</title></rect>'
            )
            if not small or cw >= 28:
                svg.text(
                    x0 + j * cw + cw / 2,
                    y + ch / 2 + 4,
                    _short(v) if cw < 48 else fmt(cell),
                    anchor="middle",
                    cls="on-dark" if t > 0.5 else "",
                    size=10 if cw < 48 else 11,
                )
    return svg.done(height)


def heatmap_chart(table: Table, uid: str, width: int = WIDTH) -> str | None:
    """A heat map: rows by the first column, a cell per other column."""
    return _grid(table, uid, width, kind="Heat map", label_cols=1, scale_from=0, zero_based=False)


def cohort_chart(table: Table, uid: str, width: int = WIDTH) -> str | None:
    """A cohort triangle: cohort label, cohort size, then a percentage per period."""
    return _grid(
        table, uid, width, kind="Cohort triangle", label_cols=2, scale_from=1, zero_based=True
    )


def funnel_chart(table: Table, uid: str, width: int = WIDTH) -> str | None:
    """A funnel: centred bars, one per stage, widths by count."""
    rows = [r for r in table.rows if len(r) > 1 and _number(r[1]) is not None]
    if not rows:
        return None
    vmax = max(_number(r[1]) or 0.0 for r in rows)
    if vmax <= 0:
        return None
    row_h, top = 34.0, 6.0
    height = top + row_h * len(rows) + 4
    label_w = 110
    span = width - label_w - 90
    mid = label_w + span / 2
    svg = _Svg(
        uid,
        width,
        f"Funnel: {table.title}",
        f"{len(rows)} stages from {rows[0][0]} to {rows[-1][0]}; the table below holds the numbers.",
    )
    for i, r in enumerate(rows):
        v = _number(r[1]) or 0.0
        w = max(2.0, span * v / vmax)
        y = top + i * row_h
        colour = _FUNNEL_COLOURS.get(str(r[0]).lower(), PALETTE[0])
        svg.text(label_w - 8, y + row_h / 2 + 4, _clip(str(r[0]), 16), anchor="end")
        svg.add(
            f'<rect x="{mid - w / 2:.1f}" y="{y + 3:.1f}" width="{w:.1f}" height="{row_h - 6:.1f}" '
            f'fill="{colour}" rx="3"><title>{escape(f"{r[0]}: {fmt(r[1])}")}</title></rect>'
        )
        share = f"  ({fmt(r[2])}%)" if len(r) > 2 and _number(r[2]) is not None else ""
        svg.text(width - 84, y + row_h / 2 + 4, fmt(r[1]) + share, size=11, cls="muted")
    return svg.done(height)


CHARTS = {
    "bar": bar_chart,
    "line": line_chart,
    "heatmap": heatmap_chart,
    "funnel": funnel_chart,
    "cohort": cohort_chart,
}
"""Chart renderers by :attr:`Table.chart` hint; each returns SVG markup or ``None`` when empty."""


# -- page ----------------------------------------------------------------------------------


def _table_html(table: Table, uid: str) -> str:
    numeric = set(_numeric_columns(table))
    head = "".join(
        f'<th scope="col"{" class=num" if i in numeric else ""}>{escape(c)}</th>'
        for i, c in enumerate(table.columns)
    )
    body = []
    for r in table.rows:
        cells = []
        for i, v in enumerate(r):
            text = escape(fmt(v))
            if i == 0:
                cells.append(f'<th scope="row">{text}</th>')
            elif i in numeric:
                cells.append(f'<td class="num">{text}</td>')
            else:
                cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="table-wrap" tabindex="0" role="region" aria-labelledby="{uid}-h">'
        f"<table><caption>{escape(table.title)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _slug(text: str, used: dict[str, int]) -> str:
    base = "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-") or "part"
    while "--" in base:
        base = base.replace("--", "-")
    used[base] = used.get(base, 0) + 1
    return base if used[base] == 1 else f"{base}-{used[base]}"


def _article(table: Table, uid: str) -> str:
    parts = [
        f'<article id="{uid}" class="{_width(table)}"><h3 id="{uid}-h">{escape(table.title)}</h3>'
    ]
    draw = CHARTS.get(table.chart or "")
    if not table.rows:
        parts.append('<p class="empty">No data yet.</p>')
        if table.note:
            parts.append(f'<p class="note">{escape(table.note)}</p>')
        parts.append("</article>")
        return "".join(parts)
    chart = draw(table, uid + "-c", WIDTH) if draw is not None else None
    if chart and _width(table) == "wide" and draw is not None:
        # A full-width card gets a wide drawing, and keeps the compact one for phones.
        wide = draw(table, uid + "-w", WIDE)
        parts.append(
            f'<figure><div class="chart only-wide">{wide}</div>'
            f'<div class="chart only-narrow">{chart}</div></figure>'
        )
    elif chart:
        parts.append(f'<figure><div class="chart">{chart}</div></figure>')
    if table.note:
        parts.append(f'<p class="note">{escape(table.note)}</p>')
    parts.append(_table_html(table, uid))
    parts.append("</article>")
    return "".join(parts)


def _width(table: Table) -> str:
    wide = len(table.columns) > 4 or table.chart in ("line", "cohort") or len(table.rows) > 14
    return "wide" if wide else ""


def render_html(report: Report, *, title: str | None = None) -> str:
    """``report`` as one self-contained HTML page (no script, no external resource)."""
    page_title = title or report.title
    used: dict[str, int] = {}
    groups: list[tuple[str | None, list[Table]]] = []
    for t in report.tables:
        if groups and groups[-1][0] == t.section:
            groups[-1][1].append(t)
        else:
            groups.append((t.section, [t]))
    nav: list[str] = []
    body: list[str] = []
    for section, tables in groups:
        if section is not None:
            sid = _slug(section, used)
            nav.append(f'<li><a href="#{sid}">{escape(section)}</a></li>')
            body.append(
                f'<section id="{sid}" aria-labelledby="{sid}-h"><h2 id="{sid}-h">{escape(section)}</h2>'
            )
        else:
            body.append("<section>")
        body.append('<div class="grid">')
        for t in tables:
            uid = _slug(t.title, used)
            if section is None:
                nav.append(f'<li><a href="#{uid}">{escape(t.title)}</a></li>')
            body.append(_article(t, uid))
        body.append("</div></section>")
    generated = f"<p>Generated {escape(report.generated_at)}</p>" if report.generated_at else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">"
        '<meta name="color-scheme" content="light dark">'
        f"<title>{escape(page_title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(page_title)}</h1>{generated}</header>"
        f'<nav aria-label="Contents"><ul>{"".join(nav)}</ul></nav>'
        f"<main>{''.join(body)}</main></body></html>\n"
    )


__all__ = [
    "CHARTS",
    "HEAT_HIGH",
    "HEAT_LOW",
    "MAX_BARS",
    "PALETTE",
    "WIDE",
    "WIDTH",
    "bar_chart",
    "cohort_chart",
    "fmt",
    "funnel_chart",
    "heatmap_chart",
    "line_chart",
    "render_html",
]
