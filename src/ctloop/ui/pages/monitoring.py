"""Monitoring and the loop: per model, monitor results over time, trigger firings, loop spans.

Monitors keep each result as a ``MonitorReport`` artifact (``ctloop monitor
... --record``, the demo, the loop): kind (drift, decay, and whatever kinds
monitoring adds, such as label-free estimates or outlier rates), value,
baseline, window. Charts put each kind's value (and its baseline: the
evaluated metric for decay) on the window's end date.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from ctloop.core.errors import CtloopError, NotFound
from ctloop.metadata.base import ArtifactRecord
from ctloop.ui.loops import LoopTimeline, timelines
from ctloop.ui.state import UiState, page, state_of

__all__ = ["router"]

router = APIRouter()
MAX_REPORTS = 500
MAX_DETAILED = 60  # drift reports whose per-feature scores are read for the top features
TOP_FEATURES = 5


def _when(report: ArtifactRecord) -> float | None:
    end = (report.properties.get("window") or {}).get("end")
    stamp = datetime.fromisoformat(end) if isinstance(end, str) else report.created_at
    return stamp.timestamp() if stamp else None


def _series(points: list[tuple[float, float | None]], label: str, **style: Any) -> dict[str, Any]:
    return {"label": label, "points": points, **style}


def _chart(title: str, ylabel: str, series: list[dict[str, Any]]) -> dict[str, Any]:
    """uPlot's column layout: one shared x (Unix seconds), one y array per series."""
    xs = sorted({x for s in series for x, _ in s["points"]})
    data: list[list[float | None]] = [list(xs)]
    for s in series:
        by_x = dict(s["points"])
        data.append([by_x.get(x) for x in xs])
    return {"title": title, "ylabel": ylabel, "data": data,
            "series": [{k: v for k, v in s.items() if k != "points"} for s in series]}


def script_json(value: Any) -> Markup:
    """JSON safe inside ``<script type="application/json">``: no ``</script>`` can close it."""
    text = json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")
    return Markup(text.replace("&", "\\u0026"))


def _loops(state: UiState, model: str | None = None) -> tuple[list[LoopTimeline], str]:
    """Loop timelines (declared or with a memory), or why there are none."""
    found, note = timelines(state.settings)
    found = [_with_model(state, tl) for tl in found]
    if model is not None:
        found = [tl for tl in found if tl.model == model]
    if not found and not note:
        note = ("No loops declared: add a [ctloop.loops.NAME] table to ctloop.toml "
                "(docs/loop.md), then `ctloop loop run` or `ctloop loop replay`.")
    return found, note


def _with_model(state: UiState, timeline: LoopTimeline) -> LoopTimeline:
    """An undeclared loop (the demo's is declared in Python) names its model in the
    parameters of the training runs it recorded."""
    if timeline.model is not None or not timeline.linked:
        return timeline
    run_ids = [s.runs["train"] for s in timeline.spans if s.runs.get("train")][:1]
    for run in state.queries.runs_by_ids(run_ids):
        name = run.parameters.get("model_name")
        if isinstance(name, str):
            return replace(timeline, model=name)
    return timeline


def _reports(state: UiState) -> list[ArtifactRecord]:
    return state.store.list_artifacts(type="MonitorReport", limit=MAX_REPORTS)


@router.get("/monitoring", response_class=HTMLResponse)
def monitoring_index(request: Request) -> HTMLResponse:
    state = state_of(request)
    reports = _reports(state)
    models = sorted({str(r.properties.get("model")) for r in reports if r.properties.get("model")})
    registered = [m.name for m in state.registry().models()]
    firings = state.queries.triggered_runs(limit=50)
    loops, loop_note = _loops(state)
    return page(request, "monitoring.html", {
        "models": sorted(set(models) | set(registered)), "firings": firings,
        "loops": loops, "loop_note": loop_note, "model": None, "charts": {}, "latest": [],
    })


def _metric_label(report: ArtifactRecord) -> str:
    """The charted metric with its direction (``rmse (lower is better)``), else "metric"."""
    from ctloop.models.tasks import HIGHER_IS_BETTER, better_word

    metric = (report.properties.get("details") or {}).get("metric")
    if isinstance(metric, str) and metric in HIGHER_IS_BETTER:
        return f"{metric} ({better_word(metric)} is better)"
    return "metric"


@router.get("/monitoring/{model}", response_class=HTMLResponse)
def monitoring_model(
    request: Request, model: str, kind: Annotated[str | None, Query()] = None
) -> HTMLResponse:
    state = state_of(request)
    reports = [r for r in _reports(state) if r.properties.get("model") == model]
    loops, loop_note = _loops(state, model)
    if not reports and not any(tl.model == model for tl in loops):
        try:
            state.registry().versions(model)
        except NotFound:
            raise NotFound(f"No model {model!r}, no monitor results and no loop for it.") \
                from None
    by_kind: dict[str, list[ArtifactRecord]] = {}
    for r in sorted(reports, key=lambda r: _when(r) or 0):
        by_kind.setdefault(str(r.properties.get("kind", "?")), []).append(r)
    charts: dict[str, dict[str, Any]] = {}
    for k, items in by_kind.items():
        if kind and k != kind:
            continue
        value = [(t, r.properties.get("value")) for r in items if (t := _when(r)) is not None]
        series = [_series(value, "live" if k == "decay" else k)]
        base = [(t, r.properties.get("baseline")) for r in items
                if (t := _when(r)) is not None and r.properties.get("baseline") is not None]
        if base:
            series.append(_series(base, "evaluated" if k == "decay" else "baseline",
                                  dash=[6, 4]))
        threshold = [(t, r.properties.get("threshold")) for r in items
                     if (t := _when(r)) is not None and r.properties.get("threshold") is not None]
        if threshold and k != "decay":
            series.append(_series(threshold, "alarm threshold", dash=[2, 4], color="#999"))
        ylabel = "share of features drifted" if k == "drift" else _metric_label(items[-1])
        charts[k] = _chart(f"{k} of {model}", ylabel, series)
    drift = by_kind.get("drift", [])[-MAX_DETAILED:]
    if drift and (not kind or kind == "drift"):
        scores: dict[str, list[tuple[float, float | None]]] = {}
        for r in drift:
            t = _when(r)
            try:
                path = state.artifacts.get(r.uri, r.sha256, name=r.id)
                details = json.loads(path.read_text()).get("details", {})
            except (CtloopError, OSError, ValueError):
                continue
            for feature, s in (details.get("scores") or {}).items():
                if t is not None and isinstance(s, dict):
                    scores.setdefault(feature, []).append((t, s.get("score")))
        top = sorted(scores, key=lambda f: -max((v or 0) for _, v in scores[f]))[:TOP_FEATURES]
        if top:
            charts["top drifted features"] = _chart(
                f"top {len(top)} drifted features of {model}", "drift score",
                [_series(scores[f], f) for f in top])
    latest = [items[-1] for items in by_kind.values()]
    firings = [r for r in state.queries.triggered_runs(limit=200)
               if r.parameters.get("model_name", model) == model][:50]
    return page(request, "monitoring.html", {
        "models": [model], "model": model, "charts": charts, "latest": latest,
        "firings": firings, "loops": loops, "loop_note": loop_note,
        "chart_json": {k: script_json(v) for k, v in charts.items()},
    })
