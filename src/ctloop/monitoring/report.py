"""A monitoring page: a model's signals over time, as one offline HTML file.

The prediction log is cut into windows; each window gets the live metric (on
labelled rows), the estimated metric with its band, the drift share and the
features furthest beyond their thresholds, and the outlier rate. Recorded
monitor results that fired (``MonitorReport`` artifacts) are marked as
trigger firings. Charts are inline SVG drawn here: no script, no CDN, no font
download, so the page opens anywhere, offline.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import pandas as pd

from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import JSONObject, as_list, as_object, as_str
from ctloop.monitoring.monitors import DriftReference, check_decay, check_drift, served_rows
from ctloop.requestlog.records import PredictionLog

if TYPE_CHECKING:
    from ctloop.metadata.base import LineageStore
    from ctloop.models.tasks import Task

__all__ = ["WindowSignals", "monitor_timeline", "render_report"]

BandPoint: TypeAlias = tuple[datetime, float, float, int]
"""An estimate's band at a window: (its middle, low, high, the window's index)."""


@dataclass
class WindowSignals:
    """The signals of one window of the log."""

    start: datetime
    end: datetime
    rows: int
    live: float | None = None
    estimated: float | None = None
    band: tuple[float | None, float | None] = (None, None)
    drift_share: float | None = None
    top_drifted: list[str] = field(default_factory=list)
    outlier_rate: float | None = None


def monitor_timeline(
    log: PredictionLog,
    model_name: str,
    *,
    reference: DriftReference | None = None,
    manifest: JSONObject | None = None,
    metric: str | None = None,
    windows: int = 12,
    start: datetime | None = None,
    end: datetime | None = None,
    min_rows: int = 100,
) -> list[WindowSignals]:
    """Signals of ``windows`` equal windows spanning the log (or ``[start, end)``).

    ``metric`` defaults to the model's own (:func:`report_metric`); a regression model
    has no label-free estimate, so its windows chart the live metric only.
    """
    from ctloop.monitoring.estimate import check_estimated_performance

    if windows < 1:
        raise UserInputError(f"windows must be at least 1. Got {windows!r}.")
    metric, task = report_metric(log, model_name, manifest, metric, start=start, end=end)
    if reference is not None:  # once, not per window
        from ctloop.data.stats import DatasetStatistics, compute_statistics
        from ctloop.monitoring.monitors import load_reference

        loaded = load_reference(reference)
        reference = loaded if isinstance(loaded, DatasetStatistics) else compute_statistics(loaded)
    frame = served_rows(log.read(model_name=model_name, start=start, end=end))
    if frame.empty:
        return []
    stamps = pd.to_datetime(frame["ts"], utc=True)
    first = start or stamps.min().to_pydatetime()
    last = end or (stamps.max().to_pydatetime() + timedelta(microseconds=1))
    first, last = _utc(first), _utc(last)
    step = (last - first) / windows
    out = []
    for i in range(windows):
        lo, hi = first + step * i, first + step * (i + 1)
        rows = int(((stamps >= lo) & (stamps < hi)).sum())
        signals = WindowSignals(start=lo, end=hi, rows=rows)
        if rows >= min_rows:
            decay = check_decay(
                log, model_name, metric=metric, baseline=0.0, start=lo, end=hi, min_labels=min_rows
            )
            signals.live = decay.value
            if manifest is not None and task != "regression":
                est = check_estimated_performance(
                    log,
                    model_name,
                    manifest=manifest,
                    metric=metric,
                    baseline=0.0,
                    start=lo,
                    end=hi,
                    min_rows=min_rows,
                    n_sim=100,
                )
                signals.estimated = est.value
                signals.band = est.band or (None, None)
            if reference is not None:
                drift = check_drift(log, model_name, reference, start=lo, end=hi, min_rows=min_rows)
                signals.drift_share = drift.value
                signals.top_drifted = [
                    as_str(row.get("feature")) for row in map(as_object, as_list(
                        drift.details.get("top_drifted"))) if row.get("drifted")
                ][:3]
            part = frame[(stamps >= lo) & (stamps < hi)]
            if "outlier_score" in part.columns and part["outlier_score"].notna().any():
                scores = pd.to_numeric(part["outlier_score"], errors="coerce").dropna()
                signals.outlier_rate = float(np.mean(scores >= 0.99))
        out.append(signals)
    return out


def report_metric(
    log: PredictionLog, model_name: str, manifest: JSONObject | None,
    metric: str | None, *, start: datetime | None = None, end: datetime | None = None,
) -> tuple[str, Task]:
    """The metric to chart (``metric``, else the model's own) and the model's task, from
    the manifest when given, else from the logged labels and answers."""
    from ctloop.models.tasks import default_metric, normalize_task, task_of_metric
    from ctloop.monitoring.monitors import task_from_log

    task = normalize_task(str(manifest["task"])) if manifest and manifest.get("task") else None
    if task is None and metric is not None:
        task = task_of_metric(metric)
    if task is None:
        frame = log.read(model_name=model_name, start=start, end=end, with_labels=True)
        task = task_from_log(frame[frame["label"].notna()])
    return metric or default_metric(task), task


def firings(store: LineageStore, model_name: str) -> list[tuple[datetime, str]]:
    """Recorded monitor results of ``model_name`` that fired: (window end or time, summary)."""
    marks = []
    for record in store.list_artifacts(type="MonitorReport"):
        props = record.properties
        if props.get("model") != model_name or not props.get("fired"):
            continue
        when = as_object(props.get("window")).get("end") or (
            record.created_at.isoformat() if record.created_at else None
        )
        if when is None:
            continue
        marks.append((_utc(datetime.fromisoformat(str(when))), str(props.get("summary", ""))))
    return sorted(marks)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- rendering ------------------------------------------------------------------

_W, _H, _PAD = 760, 220, 44
_COLORS = {"live": "#1f6feb", "estimated": "#d97706", "drift": "#7c3aed", "outliers": "#dc2626"}


def _x(t: datetime, t0: datetime, t1: datetime) -> float:
    span = (t1 - t0).total_seconds() or 1.0
    return _PAD + (_W - 2 * _PAD) * (t - t0).total_seconds() / span


def _y(v: float, lo: float, hi: float) -> float:
    span = (hi - lo) or 1.0
    return _H - _PAD + (-(_H - 2 * _PAD)) * (v - lo) / span


def _runs(band: Sequence[BandPoint]) -> list[list[tuple[datetime, float, float]]]:
    """Split band points (one per window with an estimate) where windows are missing."""
    runs: list[list[BandPoint]] = []
    for point in band:
        if runs and point[3] == runs[-1][-1][3] + 1:
            runs[-1].append(point)
        else:
            runs.append([point])
    return [[(t, a, b) for t, a, b, _ in run] for run in runs if len(run) > 1]


def _chart(
    title: str,
    series: Sequence[tuple[str, str, list[tuple[datetime, float | None]]]],
    t0: datetime,
    t1: datetime,
    *,
    band: Sequence[BandPoint] = (),
    marks: Sequence[tuple[datetime, str]] = (),
    unit_share: bool = False,
) -> str:
    values = [v for _, _, pts in series for _, v in pts if v is not None]
    values += [v for _, a, b, *_ in band for v in (a, b)]
    if not values:
        return (
            f"<section><h2>{html.escape(title)}</h2>"
            '<p class="empty">no data in any window</p></section>'
        )
    lo, hi = (0.0, max(1e-9, max(values) * 1.1)) if unit_share else (min(values), max(values))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    parts = [f'<svg viewBox="0 0 {_W} {_H}" role="img" aria-label="{html.escape(title)}">',
             *_axes(lo, hi, t0, t1)]
    for run in _runs(band):  # one shaded area per run of consecutive windows
        upper = " ".join(f"{_x(t, t0, t1):.1f},{_y(b, lo, hi):.1f}" for t, _, b in run)
        lower = " ".join(f"{_x(t, t0, t1):.1f},{_y(a, lo, hi):.1f}" for t, a, _ in reversed(run))
        parts.append(
            f'<polygon points="{upper} {lower}" fill="{_COLORS["estimated"]}" '
            'fill-opacity="0.18" stroke="none"><title>estimate band</title></polygon>'
        )
    for name, color, pts in series:
        parts.extend(_line(name, color, pts, t0, t1, lo, hi))
    for t, summary in marks:
        if t0 <= t <= t1:
            x = _x(t, t0, t1)
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_PAD}" y2="{_H - _PAD}" '
                f'class="firing"><title>{html.escape(summary)}</title></line>'
            )
    parts.append("</svg>")
    legend = " ".join(
        f'<span style="color:{c}">&#9632; {html.escape(n)}</span>' for n, c, _ in series
    )
    return f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}<p>{legend}</p></section>"


def _axes(lo: float, hi: float, t0: datetime, t1: datetime) -> list[str]:
    """The grid with its value labels, and the window's first and last time."""
    parts = []
    for k in range(5):
        tick = lo + (hi - lo) * k / 4
        y = _y(tick, lo, hi)
        parts.append(f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{_PAD - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.3g}</text>')
    for t, anchor in ((t0, "start"), (t1, "end")):
        parts.append(
            f'<text x="{_x(t, t0, t1):.1f}" y="{_H - _PAD + 18}" text-anchor="{anchor}">'
            f"{t:%Y-%m-%d %H:%M}</text>"
        )
    return parts


def _line(name: str, color: str, pts: list[tuple[datetime, float | None]], t0: datetime,
          t1: datetime, lo: float, hi: float) -> list[str]:
    """One series: a dot per value, a line through each run without a gap."""
    parts: list[str] = []
    segment: list[str] = []
    closed: list[tuple[datetime, float | None]] = [*pts, (t1, None)]
    for t, v in closed:
        if v is None:
            if len(segment) > 1:
                parts.append(
                    f'<polyline points="{" ".join(segment)}" fill="none" '
                    f'stroke="{color}" stroke-width="2"/>'
                )
            segment = []
            continue
        x, y = _x(t, t0, t1), _y(v, lo, hi)
        segment.append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
            f"<title>{html.escape(name)} {v:.4g} at {t:%Y-%m-%d %H:%M}</title>"
            "</circle>"
        )
    return parts


def render_report(
    model_name: str,
    timeline: Sequence[WindowSignals],
    *,
    metric: str = "roc_auc",
    marks: Sequence[tuple[datetime, str]] = (),
) -> str:
    """The page for ``timeline``, with ``marks`` (trigger firings) as vertical lines."""
    from ctloop.models.tasks import better_word

    title = f"Monitoring of {model_name}"
    direction = f"{better_word(metric)} is better"
    if not timeline:
        body = "<p class='empty'>No served rows in the log for this model.</p>"
    else:
        t0, t1 = timeline[0].start, timeline[-1].end
        mid = [w.start + (w.end - w.start) / 2 for w in timeline]
        band: list[BandPoint] = [
            (t, a, b, i)
            for i, (t, (a, b)) in enumerate(zip(mid, (w.band for w in timeline), strict=True))
            if a is not None and b is not None
        ]
        def series(label: str, color: str, value: Callable[[WindowSignals], float | None]
                   ) -> tuple[str, str, list[tuple[datetime, float | None]]]:
            return label, _COLORS[color], [(t, value(w)) for t, w in zip(mid, timeline,
                                                                        strict=True)]

        charts = [
            _chart(f"{metric} ({direction}): live (labelled rows) and estimated (no labels)",
                   [series("live", "live", lambda w: w.live),
                    series("estimated", "estimated", lambda w: w.estimated)],
                   t0, t1, band=band, marks=marks),
            _chart("share of drifted features",
                   [series("drift share", "drift", lambda w: w.drift_share)],
                   t0, t1, marks=marks, unit_share=True),
            _chart("outlier rate (score >= 0.99)",
                   [series("outlier rate", "outliers", lambda w: w.outlier_rate)],
                   t0, t1, marks=marks, unit_share=True),
        ]
        rows = "".join(
            f"<tr><td>{w.start:%Y-%m-%d %H:%M}</td><td>{w.rows}</td><td>{_f(w.live)}</td>"
            f"<td>{_f(w.estimated)} [{_f(w.band[0])}, {_f(w.band[1])}]</td>"
            f"<td>{_f(w.drift_share)}</td><td>{html.escape(', '.join(w.top_drifted)) or '-'}</td>"
            f"<td>{_f(w.outlier_rate)}</td></tr>"
            for w in timeline
        )
        table = (
            "<section><h2>Windows</h2><table><tr><th>start</th><th>rows</th><th>live</th>"
            "<th>estimated [band]</th><th>drift share</th><th>top drifted</th>"
            f"<th>outlier rate</th></tr>{rows}</table></section>"
        )
        fired = "".join(f"<li>{t:%Y-%m-%d %H:%M}: {html.escape(s)}</li>" for t, s in marks)
        firing_list = (
            f"<section><h2>Trigger firings</h2><ul>{fired}</ul></section>"
            if marks
            else "<section><h2>Trigger firings</h2><p>none recorded</p></section>"
        )
        body = "".join(charts) + firing_list + table
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #1f2328; max-width: 820px; }}
svg {{ width: 100%; height: auto; background: #fff; border: 1px solid #d0d7de; }}
svg text {{ font-size: 11px; fill: #57606a; }}
.grid {{ stroke: #eaeef2; }} .firing {{ stroke: #dc2626; stroke-dasharray: 4 3; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #d0d7de; padding: 3px 6px; text-align: right; }}
.empty {{ color: #57606a; }}
</style></head><body><h1>{html.escape(title)}</h1>
<p>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Dashed red lines: recorded trigger
firings.</p>{body}</body></html>
"""


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
