"""The demo's report for people: a chart and a table, one self-contained HTML page.

It reads the loop replay's JSON (``ctloop loop replay --json`` shape), nothing
else, so it imports nothing from the demo. No scripts, fonts or styles are
fetched: the chart is inline SVG, so the page opens offline as it is.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

__all__ = ["auc_chart", "write_report"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin-top:1em}
td,th{border-bottom:1px solid #ddd;padding:6px 10px;font-size:14px;vertical-align:top;
text-align:right}
td.l,th.l{text-align:left}th{background:#f5f5f5}
tr.stopped{background:#fdecec}.ok{color:#1a7f37}.warn{color:#9a6700}.bad{color:#cf222e}
details summary{cursor:pointer}small{color:#666}
"""

Span = dict[str, Any]


def _esc(value: object) -> str:
    return html.escape("-" if value is None else str(value))


def _metric(block: dict[str, Any] | None, metric: str) -> float | None:
    return None if not block else block.get(metric)


def _series(span: Span, metric: str) -> dict[str, float | None]:
    gate = span.get("gate") or {}
    return {"live": _metric(span.get("live"), metric),
            "never retrained": _metric(span.get("baseline"), metric),
            "candidate": gate.get("candidate")}


def auc_chart(spans: list[Span], metric: str = "roc_auc", width: int = 720,
              height: int = 260) -> str:
    """Inline SVG: live, never-retrained and candidate metric per span; promotions marked."""
    if not spans:
        return ""
    values = [v for s in spans for v in _series(s, metric).values() if v is not None]
    lo = min([*values, 0.6]) - 0.02
    hi = max([*values, 0.8]) + 0.02
    left, right, top, bottom = 50, 40, 20, 40
    step = (width - left - right) / max(len(spans) - 1, 1)

    def x(i: int) -> float:
        return left + i * step

    def y(value: float) -> float:
        return top + (hi - value) * (height - top - bottom) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{metric} per span">']
    parts.extend(
        f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
        f'stroke="#eee"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" '
        f'text-anchor="end">{tick:.2f}</text>'
        for tick in [round(lo + i * (hi - lo) / 4, 2) for i in range(5)])
    parts.extend(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" font-size="11" '
                 f'text-anchor="middle">{_esc(s["span"])}</text>' for i, s in enumerate(spans))
    colours = {"live": "#d4a72c", "never retrained": "#8c959f", "candidate": "#0969da"}
    for n, (label, colour) in enumerate(colours.items()):
        pts = [(x(i), y(v)) for i, s in enumerate(spans)
               if (v := _series(s, metric)[label]) is not None]
        if len(pts) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                         f'points="{path}"/>')
        parts.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>'
                     for px, py in pts)
        lx = left + 20 + n * 140
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="3" fill="{colour}"/>'
                     f'<text x="{lx + 14}" y="{height - 9}" font-size="11">{label}</text>')
    for i, s in enumerate(spans):
        if s["status"] != "valid":
            parts.append(f'<text x="{x(i):.1f}" y="{top + 10}" font-size="14" fill="#cf222e" '
                         'text-anchor="middle">✘</text>')
        elif s.get("promoted") and (s.get("gate") or {}).get("candidate") is not None:
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(s["gate"]["candidate"]):.1f}" r="7" '
                         'fill="none" stroke="#1a7f37" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _row(s: Span, metric: str, links: dict[str, str]) -> str:
    stopped = s["status"] != "valid"
    data = '<span class="bad">quarantined</span>' if stopped else '<span class="ok">ok</span>'
    if s["anomalies"]:
        items = "".join(f"<li>{html.escape(a)}</li>" for a in s["anomalies"])
        data += f"<details><summary><small>details</small></summary><ul>{items}</ul></details>"
    if s["span"] in links:
        data += f' <small><a href="{links[s["span"]]}">validation report</a></small>'
    gate = s.get("gate") or {}
    if not gate:
        verdict = "-"
    elif gate.get("error"):
        verdict = f'<span class="bad">training failed</span><br><small>{_esc(gate["error"])}'
        verdict += "</small>"
    elif gate.get("blessed"):
        verdict = '<span class="ok">blessed</span>' + (
            f" → v{s['promoted']}" if s.get("promoted") else "")
    else:
        rules = "; ".join(html.escape(r) for r in gate.get("failed", []))
        verdict = f'<span class="warn">refused</span><br><small>{rules}</small>'
    fired = ", ".join(t["name"] for t in s["triggers"] if t["fired"]) or "-"
    drift = (s.get("drift") or {}).get("share")
    boot = " <small>bootstrap</small>" if s.get("bootstrap") else ""
    cells = [
        (f"{_esc(s['span'])}{boot}", "l"), (_esc(s["rows"]), ""),
        (_esc(None if s.get("served_version") is None else f"v{s['served_version']}"), ""),
        (_esc(_metric(s.get("live"), metric)), ""), (_esc(_metric(s.get("baseline"), metric)), ""),
        ("-" if drift is None else f"{drift:.0%}", ""), (data, "l"), (html.escape(fired), "l"),
        (_esc(gate.get("candidate")), ""), (_esc(gate.get("champion")), ""), (verdict, "l"),
    ]
    cls = ' class="stopped"' if stopped else ""
    return f"<tr{cls}>" + "".join(f'<td class="{c}">{t}</td>' for t, c in cells) + "</tr>"


def write_report(folder: Path, replay: dict[str, Any], links: dict[str, str] | None = None,
                 title: str = "NYC flights 2013: continuous training, month by month") -> Path:
    """``report.json`` and ``report.html`` in ``folder``; returns the HTML path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(replay, indent=2))
    spans, metric = replay["spans"], replay.get("metric", "roc_auc")
    promoted = sum(1 for s in spans if s.get("promoted"))
    refused = sum(1 for s in spans if (s.get("gate") or {}).get("blessed") is False)
    stopped = sum(1 for s in spans if s["status"] != "valid")
    lives = [(s["live"][metric], s["baseline"][metric]) for s in spans
             if _metric(s.get("live"), metric) is not None
             and _metric(s.get("baseline"), metric) is not None]
    gain = ""
    if lives:
        diff = sum(a - b for a, b in lives) / len(lives)
        gain = (f" Served {metric} against the never-retrained first model, on average over "
                f"{len(lives)} spans: {diff:+.4f}.")
    summary = (f"{len(spans)} spans replayed: {promoted} promoted, {refused} refused by the "
               f"gate, {stopped} quarantined by validation.{gain}")
    head = [("span", "l"), ("rows", ""), ("served", ""), (f"live {metric}", ""),
            ("never retrained", ""), ("drift", ""), ("batch check", "l"), ("fired", "l"),
            ("candidate", ""), ("champion", ""), ("gate", "l")]
    table = "".join(f'<th class="{c}">{h}</th>' for h, c in head)
    rows = "".join(_row(s, metric, links or {}) for s in spans)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>ctloop: {html.escape(title)}</title><style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(summary)}</p>
<p><small>A loop declaration replayed in event time: each span is validated against the pinned
schema (a quarantined span is never trained on; the champion keeps serving), served through the
prediction service, labelled, monitored (decay against the champion's evaluation, drift against
its own training data), and the triggers decide whether to retrain; the gate promotes only a
candidate better than the champion on the same holdout. "Never retrained" scores the first
champion on every span, so the benefit of retraining is measured, not claimed.</small></p>
{auc_chart(spans, metric)}
<table><tr>{table}</tr>{rows}</table>
</body></html>"""
    path = folder / "report.html"
    path.write_text(page)
    return path
