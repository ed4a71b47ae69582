"""Reports: one JSON document for machines and one self-contained HTML page for people.

The HTML page carries its CSS inline and draws histograms as inline SVG, so
it opens offline from a mail attachment or an artifact store: no scripts,
fonts or images are fetched.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TypedDict

import jinja2
import numpy as np

from ctloop.core.arrays import Floats
from ctloop.data.drift import DriftReport, DriftReportJson
from ctloop.data.skew import Anomalies
from ctloop.data.stats import (
    CategoricalStats,
    ColumnStatistics,
    DatasetStatistics,
    NumericStats,
)
from ctloop.data.stats_json import DatasetStatisticsJson

__all__ = ["ReportJson", "render_html", "report_dict", "write_html"]



class ReportJson(TypedDict, total=False):
    """The JSON report: whichever parts were given."""

    statistics: DatasetStatisticsJson
    reference_statistics: DatasetStatisticsJson
    validation: dict[str, object]  # the anomalies file without its drift
    drift: DriftReportJson

_BINS = 24
_TOP = 10
_W, _H = 260, 70
_REF_COLOUR, _CUR_COLOUR = "#4e79a7", "#f28e2b"


def report_dict(
    *,
    stats: DatasetStatistics | None = None,
    reference: DatasetStatistics | None = None,
    anomalies: Anomalies | None = None,
    drift: DriftReport | None = None,
) -> ReportJson:
    """The JSON report: statistics summaries (no sketches), anomalies and drift."""
    drift = drift or (anomalies.drift if anomalies else None)
    out: ReportJson = {}
    if stats is not None:
        out["statistics"] = stats.to_dict(sketches=False)
    if reference is not None:
        out["reference_statistics"] = reference.to_dict(sketches=False)
    if anomalies is not None:
        body: dict[str, object] = dict(anomalies.to_dict())
        body.pop("drift")
        out["validation"] = body
    if drift is not None:
        out["drift"] = drift.to_dict()
    return out


def write_html(
    path: str | Path,
    *,
    stats: DatasetStatistics | None = None,
    reference: DatasetStatistics | None = None,
    anomalies: Anomalies | None = None,
    drift: DriftReport | None = None,
    title: str = "ctloop data report",
) -> Path:
    """Write :func:`render_html` to ``path``."""
    path = Path(path)
    path.write_text(render_html(stats=stats, reference=reference, anomalies=anomalies,
                                drift=drift, title=title), encoding="utf-8")
    return path


def render_html(
    *,
    stats: DatasetStatistics | None = None,
    reference: DatasetStatistics | None = None,
    anomalies: Anomalies | None = None,
    drift: DriftReport | None = None,
    title: str = "ctloop data report",
) -> str:
    """One self-contained HTML page of whatever parts are given."""
    drift = drift or (anomalies.drift if anomalies else None)
    flagged: dict[str, str] = {}
    for anomaly in anomalies.anomalies if anomalies else []:
        if anomaly.column and flagged.get(anomaly.column) != "error":
            flagged[anomaly.column] = anomaly.severity
    columns = []
    if stats is not None:
        for name, col in stats.columns.items():
            ref_col = reference.columns.get(name) if reference else None
            columns.append(_column_view(col, ref_col, flagged.get(name, "")))
    drift_rows = [
        {
            "f": feature,
            "score": _fmt(feature.score),
            "threshold": _fmt(feature.threshold),
            "measures": ", ".join(
                f"{k} {_fmt(v)}" for k, v in feature.measures.items() if k != feature.method
            ),
        }
        for feature in (drift.features if drift is not None else [])
    ]
    return _TEMPLATE.render(
        title=title,
        stats=stats,
        reference=reference,
        anomalies=anomalies,
        drift=drift,
        drift_rows=drift_rows,
        columns=columns,
        ref_colour=_REF_COLOUR,
        cur_colour=_CUR_COLOUR,
    )


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}"
    return str(value)


def _column_view(col: ColumnStatistics, ref: ColumnStatistics | None, flag: str
                 ) -> dict[str, str | int]:
    view: dict[str, str | int] = {
        "name": col.name,
        "type": col.type,
        "count": col.count,
        "missing": f"{col.missing_rate:.1%}",
        "flag": flag,
        "details": "",
        "chart": "",
    }
    if col.numeric is not None and col.numeric.finite:
        num = col.numeric
        view["details"] = (
            f"min {_fmt(num.min)} · max {_fmt(num.max)} · mean {_fmt(num.mean)}"
            f" · std {_fmt(num.std)} · zeros {num.zeros}" + (f" · inf {num.inf}" if num.inf else "")
        )
        ref_num = ref.numeric if ref is not None and ref.numeric is not None else None
        view["chart"] = _numeric_svg(num, ref_num if ref_num and ref_num.finite else None)
    elif col.categorical is not None and col.categorical.total:
        cat = col.categorical
        top = ", ".join(f"{html.escape(v)} ({c})" for v, c in cat.top(5))
        view["details"] = f"distinct {cat.distinct} · top {top}"
        ref_cat = ref.categorical if ref is not None and ref.categorical is not None else None
        view["chart"] = _categorical_svg(cat.frequencies(), cat.total, ref_cat)
    return view


def _numeric_svg(cur: NumericStats, ref: NumericStats | None) -> str:
    # Both have finite values (the caller checks), so their min and max are set.
    assert cur.min is not None and cur.max is not None
    assert ref is None or (ref.min is not None and ref.max is not None)
    lo = min(cur.min, ref.min) if ref and ref.min is not None else cur.min
    hi = max(cur.max, ref.max) if ref and ref.max is not None else cur.max
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, _BINS + 1)
    series = [(_shares(cur, edges), _CUR_COLOUR)]
    if ref is not None:
        series.insert(0, (_shares(ref, edges), _REF_COLOUR))
    return _bars_svg(series, f"{lo:.4g}", f"{hi:.4g}")


def _shares(num: NumericStats, edges: Floats) -> Floats:
    counts = np.asarray(num.histogram(edges.tolist())["counts"])
    return counts / counts.sum() if counts.sum() else counts


def _categorical_svg(freqs: dict[str, int], total: int, ref: CategoricalStats | None) -> str:
    labels = list(freqs)[:_TOP]
    cur = np.array([freqs[v] for v in labels], dtype=float) / total
    series = [(cur, _CUR_COLOUR)]
    if ref is not None and ref.total:
        ref_freqs = ref.frequencies()
        series.insert(0, (np.array([ref_freqs.get(v, 0) for v in labels]) / ref.total, _REF_COLOUR))
    return _bars_svg(series, labels[0] if labels else "", labels[-1] if labels else "")


def _bars_svg(series: list[tuple[Floats, str]], left: str, right: str) -> str:
    """Overlaid semi-transparent bars, one colour per dataset."""
    n = len(series[0][0])
    top = max(float(np.max(s)) for s, _ in series) or 1.0
    width = _W / max(n, 1)
    rects = []
    for values, colour in series:
        for i, value in enumerate(values):
            h = (_H - 14) * float(value) / top
            rects.append(
                f'<rect x="{i * width:.1f}" y="{_H - 14 - h:.1f}" width="{max(width - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}" fill-opacity="0.55"/>'
            )
    labels = (
        f'<text x="0" y="{_H - 2}" font-size="9">{html.escape(left)}</text>'
        f'<text x="{_W}" y="{_H - 2}" font-size="9" text-anchor="end">{html.escape(right)}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}">{"".join(rects)}{labels}</svg>'
    )


_TEMPLATE = jinja2.Environment(
    loader=jinja2.PackageLoader("ctloop.data", "."), autoescape=True
).get_template("report.html.j2")
