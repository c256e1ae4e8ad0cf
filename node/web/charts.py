"""Charts as server-side SVG: a line chart, horizontal stacked bars, a flow map and a timeline.

Pure functions from numbers to markup (no I/O, no JavaScript, no network): the node serves the
pictures inside its pages, so they render offline and with scripts off. Layout is deterministic (same
input, same bytes), every label is escaped, and every mark carries ``data-*`` attributes naming what it
shows plus, where given, a link to the filtered table behind it, so a test (or a reader) can count
points and edges and follow them. Colours are SVG presentation attributes, not ``style=``, because the
pages' Content-Security-Policy forbids inline styles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Callable

from markupsafe import Markup

PALETTE = {"access": "#2f6690", "denial": "#c0392b", "flagged": "#e1a200"}
_FALLBACK = ["#2f6690", "#3a7d44", "#8e5ea2", "#e07a1f", "#5c6b73", "#b5838d", "#118ab2"]


def colour(series: str, index: int = 0) -> str:
    return PALETTE.get(series, _FALLBACK[index % len(_FALLBACK)])


def _a(text: object) -> str:
    """An attribute value (always quoted by the caller) or text node, escaped."""
    return escape(str(text), quote=True)


def _num(value: float) -> str:
    """Coordinates rounded to 0.1: deterministic output without float noise."""
    return f"{round(value, 1):g}"


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _wrap(mark: str, href: str | None) -> str:
    return f'<a href="{_a(href)}">{mark}</a>' if href else mark


def _svg(chart_id: str, kind: str, title: str, width: int, height: int, body: list[str]) -> Markup:
    return Markup(f'<svg id="{_a(chart_id)}" class="chart chart-{kind}" data-chart="{kind}" viewBox="0 0 {width} {height}" '
                  f'role="img" aria-labelledby="{_a(chart_id)}-title" xmlns="http://www.w3.org/2000/svg">'
                  f'<title id="{_a(chart_id)}-title">{_a(title)}</title>' + "".join(body) + "</svg>")


def _nice_max(value: float) -> float:
    """The smallest 1/2/5 x 10^k at or above ``value`` (axis top), at least 1."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


# ---------------------------------------------------------------------- line chart


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float]  # one per x label, in order
    hrefs: list[str | None] | None = None  # one per x label: the filtered table for that point


def line_chart(chart_id: str, title: str, labels: list[str], series: list[Series], *, width: int = 640,
               height: int = 240, tick: Callable[[str], str] = str) -> Markup:
    """One line per series over the same x labels (e.g. days); each point a circle with its value.

    ``tick`` shortens a label for the axis (the point keeps the full label in ``data-x`` and its tooltip).
    """
    for s in series:
        if len(s.values) != len(labels) or (s.hrefs is not None and len(s.hrefs) != len(labels)):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(labels)} labels")
    left, right, top, bottom = 48, 28, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max([v for s in series for v in s.values] or [0]))
    step = plot_w / max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return left + (i * step if len(labels) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / top_value

    body = ['<g class="axis">']
    for frac in (0, 0.5, 1):
        yy = y(top_value * frac)
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(yy)}" y2="{_num(yy)}" stroke="#dde3ea"/>'
                    f'<text x="{left - 6}" y="{_num(yy + 4)}" text-anchor="end" font-size="11" fill="#4a5868">'
                    f'{_a(_fmt(top_value * frac))}</text>')
    every = max(1, math.ceil(len(labels) / 8))  # at most ~8 x labels, so they stay readable on a phone
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            body.append(f'<text x="{_num(x(i))}" y="{height - bottom + 16}" text-anchor="middle" font-size="11" '
                        f'fill="#4a5868">{_a(tick(label))}</text>')
    body.append("</g>")
    for n, s in enumerate(series):
        stroke = colour(s.name, n)
        path = " ".join(f"{'M' if i == 0 else 'L'}{_num(x(i))},{_num(y(v))}" for i, v in enumerate(s.values))
        body.append(f'<g class="series" data-series="{_a(s.name)}">')
        if path:
            body.append(f'<path d="{path}" fill="none" stroke="{stroke}" stroke-width="2"/>')
        for i, v in enumerate(s.values):
            mark = (f'<circle class="point" data-series="{_a(s.name)}" data-x="{_a(labels[i])}" data-value="{_a(_fmt(v))}" '
                    f'cx="{_num(x(i))}" cy="{_num(y(v))}" r="4" fill="{stroke}"><title>{_a(s.name)} {_a(labels[i])}: '
                    f'{_a(_fmt(v))}</title></circle>')
            body.append(_wrap(mark, s.hrefs[i] if s.hrefs else None))
        body.append("</g>")
    # legend
    lx = left
    for n, s in enumerate(series):
        body.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{colour(s.name, n)}"/>'
                    f'<text x="{lx + 14}" y="{height - 5}" font-size="11" fill="#1d2733">{_a(s.name)}</text>')
        lx += 24 + 7 * len(s.name)
    return _svg(chart_id, "line", title, width, height, body)


# ---------------------------------------------------------------------- horizontal stacked bars


@dataclass(frozen=True)
class Bar:
    label: str
    segments: list[tuple[str, float]]  # (series name, value), drawn left to right
    href: str | None = None
    note: str = ""  # drawn after the bar (e.g. "rows 1,234")
    key: str = ""  # a machine value for the mark (an address), when the label is a display name

    @property
    def total(self) -> float:
        return sum(v for _, v in self.segments)


def bar_chart(chart_id: str, title: str, bars: list[Bar], *, width: int = 640, row_height: int = 26) -> Markup:
    """One horizontal bar per item, split into coloured segments; the whole bar links to its table."""
    label_w, right = 130, 120
    plot_w = width - label_w - right
    height = max(1, len(bars)) * row_height + 24
    top_value = _nice_max(max([b.total for b in bars] or [0]))
    names = list(dict.fromkeys(name for b in bars for name, _ in b.segments))
    body: list[str] = []
    if not bars:
        body.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="12" fill="#8894a2">'
                    f'nothing in this window</text>')
    for row, b in enumerate(bars):
        y0 = row * row_height + 4
        parts = [f'<g class="bar" data-label="{_a(b.label)}" data-key="{_a(b.key or b.label)}" '
                 f'data-value="{_a(_fmt(b.total))}">',
                 f'<text x="{label_w - 6}" y="{y0 + row_height / 2 + 4:g}" text-anchor="end" font-size="12" '
                 f'fill="#1d2733">{_a(b.label)}</text>']
        x0 = float(label_w)
        for name, value in b.segments:
            w = plot_w * value / top_value
            parts.append(f'<rect class="segment" data-series="{_a(name)}" data-value="{_a(_fmt(value))}" x="{_num(x0)}" '
                         f'y="{y0 + 3}" width="{_num(w)}" height="{row_height - 8}" fill="{colour(name, names.index(name))}">'
                         f'<title>{_a(b.label)} {_a(name)}: {_a(_fmt(value))}</title></rect>')
            x0 += w
        parts.append(f'<text x="{_num(x0 + 6)}" y="{y0 + row_height / 2 + 4:g}" font-size="11" fill="#4a5868">'
                     f'{_a(_fmt(b.total))}{(" · " + _a(b.note)) if b.note else ""}</text></g>')
        body.append(_wrap("".join(parts), b.href))
    lx = label_w
    for n, name in enumerate(names):
        body.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{colour(name, n)}"/>'
                    f'<text x="{lx + 14}" y="{height - 5}" font-size="11" fill="#1d2733">{_a(name)}</text>')
        lx += 24 + 7 * len(name)
    return _svg(chart_id, "bar", title, width, height, body)


# ---------------------------------------------------------------------- flow map


@dataclass(frozen=True)
class FlowNode:
    key: str  # an address
    label: str  # a member's name
    flagged: bool = False  # has anomalies in the window
    href: str | None = None


@dataclass(frozen=True)
class FlowEdge:
    source: str  # data owner (the data flows from it)
    target: str  # requester
    uses: int
    rows: int
    denials: int = 0
    href: str | None = None
    extra: dict = field(default_factory=dict)


def flow_map(chart_id: str, title: str, nodes: list[FlowNode], edges: list[FlowEdge], *, size: int = 520) -> Markup:
    """Members on a circle (sorted by name, so the layout never moves), data use as arrows owner -> requester.

    Arrow width grows with rows used (square root, so one heavy user does not hide the rest); refusals
    add a thin red dashed arrow beside it (alone when nothing was allowed); a member with anomalies
    gets a red ring.
    """
    known = {n.key for n in nodes}
    missing = [k for e in edges for k in (e.source, e.target) if k not in known]
    if missing:
        raise ValueError(f"edges name unknown nodes: {sorted(set(missing))}")
    ordered = sorted(nodes, key=lambda n: (n.label.lower(), n.key))
    cx = cy = size / 2
    radius = size / 2 - 70
    place = {}
    for i, n in enumerate(ordered):
        angle = -math.pi / 2 + 2 * math.pi * i / max(len(ordered), 1)
        place[n.key] = (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
    heaviest = max([e.rows for e in edges] or [0]) or 1
    body = ['<defs>'
            f'<marker id="{_a(chart_id)}-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="12" markerHeight="12" '
            'markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#2f6690"/></marker>'
            f'<marker id="{_a(chart_id)}-arrow-red" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="12" markerHeight="12" '
            'markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/></marker></defs>']
    node_r = 16
    for e in sorted(edges, key=lambda e: (e.source, e.target)):
        (x1, y1), (x2, y2) = place[e.source], place[e.target]
        if e.source == e.target:
            continue  # a member using its own data is not a flow between members
        dx, dy = x2 - x1, y2 - y1
        dist = math.hypot(dx, dy) or 1
        ux, uy = dx / dist, dy / dist
        # Start and end on the circles' rims; bend to the right so A->B and B->A stay apart.
        sx, sy, ex, ey = x1 + ux * node_r, y1 + uy * node_r, x2 - ux * (node_r + 2), y2 - uy * (node_r + 2)
        mx, my = (sx + ex) / 2 - uy * dist * 0.15, (sy + ey) / 2 + ux * dist * 0.15
        curve = f"M{_num(sx)},{_num(sy)} Q{_num(mx)},{_num(my)} {_num(ex)},{_num(ey)}"
        cls = "edge" + (" has-denials" if e.denials else "") + ("" if e.uses else " denied-only")
        label = f"{e.uses:,} use(s), {e.rows:,} row(s)" + (f", {e.denials:,} refused" if e.denials else "")
        parts = [f'<g class="{cls}" data-source="{_a(e.source)}" data-target="{_a(e.target)}" data-uses="{e.uses}" '
                 f'data-rows="{e.rows}" data-denials="{e.denials}"><title>{_a(label)}</title>',
                 # an invisible wide stroke under the line, so a thin edge is easy to click or tap
                 f'<path class="hit" d="{curve}" fill="none" stroke="#000" stroke-opacity="0" stroke-width="14"/>']
        if e.uses:
            width = 1.5 + 8 * math.sqrt(e.rows / heaviest)
            parts.append(f'<path class="use" d="{curve}" fill="none" stroke="#2f6690" stroke-opacity="0.8" '
                         f'stroke-width="{_num(width)}" marker-end="url(#{_a(chart_id)}-arrow)"/>')
        if e.denials:
            # Refusals: a thin red dashed curve bent a little further, so it shows beside the uses.
            rx, ry = (sx + ex) / 2 - uy * dist * 0.24, (sy + ey) / 2 + ux * dist * 0.24
            parts.append(f'<path class="refusal" d="M{_num(sx)},{_num(sy)} Q{_num(rx)},{_num(ry)} {_num(ex)},{_num(ey)}" '
                         f'fill="none" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5 3" '
                         f'marker-end="url(#{_a(chart_id)}-arrow-red)"/>')
        text = " · ".join(([f"{e.rows:,}"] if e.uses else []) + ([f"{e.denials:,}✕"] if e.denials else []))
        parts.append(f'<text x="{_num((sx + ex) / 4 + mx / 2)}" y="{_num((sy + ey) / 4 + my / 2)}" text-anchor="middle" '
                     f'font-size="11" fill="{"#9b1c1c" if e.denials else "#1d2733"}">{_a(text)}</text></g>')
        mark = "".join(parts)
        body.append(_wrap(mark, e.href))
    for n in ordered:
        x, y = place[n.key]
        mark = (f'<g class="node{" flagged" if n.flagged else ""}" data-key="{_a(n.key)}" data-label="{_a(n.label)}">'
                f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{node_r}" fill="#f1f4f8" '
                f'stroke="{"#c0392b" if n.flagged else "#1d3557"}" stroke-width="{4 if n.flagged else 1.5}"/>'
                f'<text x="{_num(x)}" y="{_num(y + node_r + 14)}" text-anchor="middle" font-size="12" fill="#1d2733">'
                f'{_a(n.label[:16])}</text><title>{_a(n.label)}{" (anomalies)" if n.flagged else ""}</title></g>')
        body.append(_wrap(mark, n.href))
    return _svg(chart_id, "flow", title, size, size, body)


# ---------------------------------------------------------------------- timeline


@dataclass(frozen=True)
class Mark:
    ts: int  # unix seconds
    lane: str  # e.g. the anomaly kind
    label: str
    href: str | None = None


def timeline(chart_id: str, title: str, marks: list[Mark], start: int, end: int, *, width: int = 640,
             tick_labels: list[tuple[int, str]] | None = None) -> Markup:
    """Marks on a time axis from ``start`` to ``end`` (unix seconds), one lane per kind."""
    if end <= start:
        raise ValueError("a timeline needs end > start")
    lanes = sorted({m.lane for m in marks})
    left, right, lane_h = 130, 16, 26
    height = max(1, len(lanes)) * lane_h + 34
    plot_w = width - left - right

    def x(ts: int) -> float:
        return left + plot_w * (min(max(ts, start), end) - start) / (end - start)

    body = [f'<line x1="{left}" x2="{width - right}" y1="{height - 26}" y2="{height - 26}" stroke="#8894a2"/>']
    for ts, label in tick_labels or []:
        body.append(f'<text x="{_num(x(ts))}" y="{height - 10}" text-anchor="middle" font-size="11" fill="#4a5868">'
                    f'{_a(label)}</text>')
    if not marks:
        body.append(f'<text x="{width / 2}" y="{(height - 26) / 2 + 4}" text-anchor="middle" font-size="12" '
                    f'fill="#8894a2">none in this window</text>')
    for i, lane in enumerate(lanes):
        y = i * lane_h + 14
        body.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end" font-size="12" fill="#1d2733">{_a(lane)}</text>'
                    f'<line x1="{left}" x2="{width - right}" y1="{y}" y2="{y}" stroke="#eef1f5"/>')
    for m in sorted(marks, key=lambda m: (m.lane, m.ts, m.label)):
        y = lanes.index(m.lane) * lane_h + 14
        mark = (f'<circle class="mark" data-lane="{_a(m.lane)}" data-ts="{m.ts}" cx="{_num(x(m.ts))}" cy="{y}" r="6" '
                f'fill="#c0392b" fill-opacity="0.8"><title>{_a(m.label)}</title></circle>')
        body.append(_wrap(mark, m.href))
    return _svg(chart_id, "timeline", title, width, height, body)
