"""The demo's report for people: a chart and a table, one self-contained HTML page.

No scripts, fonts or styles are fetched: the chart is inline SVG, so the page
opens offline and can be attached to an email or a ticket as it is.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ctloop.examples.flights.demo import MonthOutcome

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


def _esc(value: object) -> str:
    return html.escape("-" if value is None else str(value))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def auc_chart(outcomes: list[MonthOutcome], width: int = 720, height: int = 260) -> str:
    """Inline SVG: candidate and champion AUC per month; promotions, refusals, stops marked."""
    values = [v for o in outcomes for v in (o.candidate_auc, o.champion_auc, o.live_auc)
              if v is not None]
    if not outcomes:
        return ""
    lo = min([*values, 0.6]) - 0.02
    hi = max([*values, 0.8]) + 0.02
    left, right, top, bottom = 50, 40, 20, 40
    months = [o.month for o in outcomes]
    span = max(len(months) - 1, 1)

    def x(month: int) -> float:
        return left + (months.index(month)) * (width - left - right) / span

    def y(value: float) -> float:
        return top + (hi - value) * (height - top - bottom) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'role="img" aria-label="AUC per month">']
    parts.extend(
        f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
        f'stroke="#eee"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" '
        f'text-anchor="end">{tick:.2f}</text>'
        for tick in [round(lo + i * (hi - lo) / 4, 2) for i in range(5)]
    )
    parts.extend(
        f'<text x="{x(o.month):.1f}" y="{height - bottom + 16}" font-size="11" '
        f'text-anchor="middle">2013-{o.month:02d}</text>'
        for o in outcomes
    )
    for attr, colour, label in (("champion_auc", "#8c959f", "champion"),
                                ("candidate_auc", "#0969da", "candidate"),
                                ("live_auc", "#d4a72c", "live")):
        pts = [(x(o.month), y(getattr(o, attr))) for o in outcomes
               if getattr(o, attr) is not None]
        if len(pts) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                         f'points="{path}"/>')
        for px, py in pts:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>')
        lx = width - right - {"candidate": 170, "champion": 85, "live": 240}[label]
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="3" fill="{colour}"/>'
                     f'<text x="{lx + 14}" y="{height - 9}" font-size="11">{label}</text>')
    for o in outcomes:
        if o.stopped_by_validation or o.status != "succeeded":
            cx, cy = x(o.month), top + 10
            parts.append(f'<text x="{cx:.1f}" y="{cy:.1f}" font-size="14" fill="#cf222e" '
                         'text-anchor="middle">✘</text>')
        elif o.candidate_auc is not None:
            colour = "#1a7f37" if o.blessed else "#bf8700"
            parts.append(f'<circle cx="{x(o.month):.1f}" cy="{y(o.candidate_auc):.1f}" r="7" '
                         f'fill="none" stroke="{colour}" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _row(o: MonthOutcome, links: dict[int, str]) -> str:
    stopped = o.stopped_by_validation
    if stopped:
        data = '<span class="bad">stopped</span>'
    elif o.status != "succeeded":
        data = '<span class="bad">run failed</span>'
    else:
        n_warn = sum(1 for a in o.anomalies if a.startswith("[warning]"))
        data = f'<span class="ok">ok</span> <small>{n_warn} warning(s)</small>' if n_warn else \
            '<span class="ok">ok</span>'
    if o.anomalies:
        items = "".join(f"<li>{html.escape(a)}</li>" for a in o.anomalies)
        data += f"<details><summary><small>details</small></summary><ul>{items}</ul></details>"
    if o.month in links:
        data += f' <small><a href="{links[o.month]}">validation report</a></small>'
    if o.error and not stopped:
        data += f"<br><small>{html.escape(o.error)}</small>"
    if o.blessed is None:
        gate = "-"
    elif o.blessed:
        gate = '<span class="ok">blessed</span>' + (" → promoted" if o.promoted else "")
    else:
        rules = "; ".join(html.escape(r) for r in o.failed_rules)
        gate = f'<span class="warn">refused</span><br><small>{rules}</small>'
    if o.live_auc is None:
        live = "-"
    else:
        mark = ' <span class="bad">decayed</span>' if o.decay_fired else ""
        live = f"{o.live_auc}{mark}<br><small>evaluated {_esc(o.live_baseline)}</small>"
    boot = " <small>bootstrap</small>" if o.trigger == "bootstrap" else ""
    month = f"2013-{o.month:02d}{boot}"
    cells = [
        (month, "l"), (_esc(o.served), ""), (live, ""), (_pct(o.serving_drift), ""),
        (_esc(o.rows), ""), (_pct(o.delayed_share), ""), (data, "l"),
        (_esc(o.candidate_auc), ""), (_esc(o.champion_auc), ""), (gate, "l"),
        (_esc(o.version), ""),
        ("-" if o.champion_version is None else f"v{o.champion_version}", ""),
    ]
    cls = ' class="stopped"' if stopped else ""
    return f"<tr{cls}>" + "".join(f'<td class="{c}">{t}</td>' for t, c in cells) + "</tr>"


def write_report(
    folder: Path, outcomes: list[MonthOutcome], links: dict[int, str] | None = None
) -> Path:
    """``report.json`` and ``report.html`` in ``folder``; returns the HTML path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    promoted = sum(1 for o in outcomes if o.promoted)
    refused = sum(1 for o in outcomes if o.blessed is False)
    stopped = sum(1 for o in outcomes if o.stopped_by_validation)
    final = next((o.champion_version for o in reversed(outcomes) if o.champion_version), None)
    summary = (f"{len(outcomes)} months replayed: {promoted} promoted, {refused} refused by "
               f"the gate, {stopped} stopped by validation. "
               f"Champion at the end: {'v' + str(final) if final else 'none'}.")
    head = [("month", "l"), ("served", ""), ("live AUC", ""), ("serving drift", ""),
            ("batch rows", ""), ("late", ""), ("batch check", "l"), ("AUC new", ""),
            ("AUC champion", ""), ("gate", "l"), ("version", ""), ("champion", "")]
    table = "".join(f'<th class="{c}">{h}</th>' for h, c in head)
    rows = "".join(_row(o, links or {}) for o in outcomes)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>ctloop demo: NYC flights 2013</title><style>{_STYLE}</style></head><body>
<h1>NYC flights 2013: continuous training, month by month</h1>
<p>{html.escape(summary)}</p>
<p><small>Each month the champion serves the month's flights through the prediction service;
labels arrive; the monitors compute its live AUC (decayed when more than 0.03 below its AUC at
evaluation) and the share of watched serving features that drifted from its training data.
Then the month's batch lands and the new-data trigger starts the pipeline: validate the batch
against the pinned schema and the month before, train on the trailing months from the feature
store, evaluate candidate and champion on the new month, promote only what the gate
blesses.</small></p>
{auc_chart(outcomes)}
<table><tr>{table}</tr>{rows}</table>
</body></html>"""
    path = folder / "report.html"
    path.write_text(page)
    return path
