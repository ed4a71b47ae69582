"""Server-rendered SVG: pipeline DAGs, lineage graphs and overlaid histograms.

Drawn on the server so the pictures need no script, print, and can be
asserted in tests as text (every bar and node carries its label). Every
string put into the markup goes through ``markupsafe.escape``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

__all__ = ["GraphNode", "Histogram", "graph_svg", "histogram_svg", "layers"]

STATE_COLORS = {
    "succeeded": "#2e7d32", "cached": "#1565c0", "failed": "#c62828", "running": "#ef6c00",
    "pending": "#757575", "skipped": "#9e9e9e", "artifact": "#6a1b9a", "model": "#00695c",
    "alias": "#ad1457", "code": "#4e342e",
}


@dataclass
class GraphNode:
    """A box in a graph: an id, a title, a few detail lines, a state (its colour), a link."""

    id: str
    title: str
    lines: list[str] = field(default_factory=list)
    state: str = "pending"
    href: str | None = None
    upstream: list[str] = field(default_factory=list)
    highlight: bool = False


def layers(nodes: Sequence[GraphNode]) -> dict[str, int]:
    """Each node's column: the longest path from a node with no upstream (cycles cut)."""
    by_id = {n.id: n for n in nodes}
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(node_id: str) -> int:
        if node_id in depth:
            return depth[node_id]
        if node_id in visiting:
            return 0
        visiting.add(node_id)
        ups = [u for u in by_id[node_id].upstream if u in by_id]
        depth[node_id] = 1 + max((visit(u) for u in ups), default=-1)
        visiting.discard(node_id)
        return depth[node_id]

    for n in nodes:
        visit(n.id)
    return depth


BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 190, 64, 60, 18, 12


def graph_svg(
    nodes: Sequence[GraphNode], *, label: str, box_w: int = BOX_W, gap_x: int = GAP_X
) -> Markup:
    """Nodes in columns by depth, edges as curves from upstream to downstream."""
    if not nodes:
        return Markup('<p class="muted">Nothing to draw.</p>')
    depth = layers(nodes)
    columns: dict[int, list[GraphNode]] = {}
    for n in nodes:
        columns.setdefault(depth[n.id], []).append(n)
    pos: dict[str, tuple[int, int]] = {}
    for col, members in columns.items():
        for row, n in enumerate(members):
            pos[n.id] = (PAD + col * (box_w + gap_x), PAD + row * (BOX_H + GAP_Y))
    width = PAD * 2 + (max(columns) + 1) * (box_w + gap_x) - gap_x
    height = PAD * 2 + max(len(m) for m in columns.values()) * (BOX_H + GAP_Y) - GAP_Y
    parts = [
        f'<svg class="graph" role="img" aria-label="{escape(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#888"/></marker></defs>',
    ]
    for n in nodes:
        for up in n.upstream:
            if up not in pos:
                continue
            x1, y1 = pos[up][0] + box_w, pos[up][1] + BOX_H // 2
            x2, y2 = pos[n.id][0], pos[n.id][1] + BOX_H // 2
            mid = (x1 + x2) // 2
            parts.append(
                f'<path class="edge" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 2},{y2}" '
                'fill="none" stroke="#888" stroke-width="1.4" marker-end="url(#arrow)"/>'
            )
    for n in nodes:
        x, y = pos[n.id]
        color = STATE_COLORS.get(n.state, "#757575")
        stroke = ' stroke="#000" stroke-width="3"' if n.highlight else ""
        box = [
            f'<g class="node state-{escape(n.state)}" data-id="{escape(n.id)}">',
            f"<title>{escape(n.title)} ({escape(n.state)})</title>",
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{BOX_H}" rx="6" fill="#fff" '
            f'stroke="{color}" stroke-width="2"{stroke}/>',
            f'<rect x="{x}" y="{y}" width="6" height="{BOX_H}" rx="3" fill="{color}"/>',
            f'<text x="{x + 14}" y="{y + 18}" class="node-title">'
            f"{escape(_clip(n.title, (box_w - 20) // 7))}"
            "</text>",
        ]
        for i, line in enumerate(n.lines[:3]):
            box.append(f'<text x="{x + 14}" y="{y + 34 + i * 13}" class="node-line">'
                       f"{escape(_clip(line, (box_w - 20) // 6))}</text>")
        box.append("</g>")
        group = "".join(box)
        if n.href:
            group = f'<a href="{escape(n.href)}">{group}</a>'
        parts.append(group)
    parts.append("</svg>")
    return Markup("".join(parts))


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Histogram:
    """Bars per bin or category for a reference and a current dataset (shares, 0..1)."""

    labels: list[str]
    reference: list[float]
    current: list[float]
    new: list[bool] = field(default_factory=list)  # category absent from the reference


def histogram_svg(h: Histogram, *, title: str) -> Markup:
    """Overlaid bars, reference behind current; every bar labelled, new categories marked."""
    n = len(h.labels)
    if n == 0:
        return Markup('<p class="muted">No values to draw.</p>')
    bar_w = 26 if n <= 20 else 14
    plot_h, left, top, bottom = 140, 40, 16, 86
    width = left + n * (bar_w + 8) + 70  # room for the last rotated label
    height = top + plot_h + bottom
    peak = max([*h.reference, *h.current, 1e-12])
    parts = [
        f'<svg class="hist" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left}" y="11" class="axis">{escape(_pct(peak))} max share</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 6}" y2="{top + plot_h}" '
        'stroke="#999"/>',
    ]
    for i, name in enumerate(h.labels):
        x = left + i * (bar_w + 8)
        ref = h.reference[i] if i < len(h.reference) else 0.0
        cur = h.current[i] if i < len(h.current) else 0.0
        is_new = i < len(h.new) and h.new[i]
        rh, ch = plot_h * ref / peak, plot_h * cur / peak
        parts.append(
            f'<g class="bar{" new" if is_new else ""}" data-label="{escape(name)}">'
            f"<title>{escape(name)}: reference {escape(_pct(ref))}, current {escape(_pct(cur))}"
            f"{' (new: not in the reference)' if is_new else ''}</title>"
            f'<rect class="ref" x="{x}" y="{top + plot_h - rh:.1f}" width="{bar_w}" '
            f'height="{rh:.1f}" fill="#90a4ae" fill-opacity="0.7"/>'
            f'<rect class="cur" x="{x + bar_w * 0.3:.1f}" y="{top + plot_h - ch:.1f}" '
            f'width="{bar_w * 0.7:.1f}" height="{ch:.1f}" '
            f'fill="{"#d81b60" if is_new else "#1e88e5"}" fill-opacity="0.8"/>'
            f'<text class="tick" transform="translate({x + bar_w / 2:.1f},{top + plot_h + 8}) '
            f'rotate(55)">{escape(_clip(name, 16))}{" ★new" if is_new else ""}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _pct(value: float) -> str:
    return f"{value:.1%}"
