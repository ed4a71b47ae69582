"""Monitoring and the loop: per model, monitor results over time, trigger firings, loop spans.

Monitors keep each result as a ``MonitorReport`` artifact (``ctloop monitor
... --record``, the demo, the loop): kind (drift, decay, and whatever kinds
monitoring adds, such as label-free estimates or outlier rates), value,
baseline, window. Charts put each kind's value (and its baseline: the
evaluated metric for decay) on the window's end date.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from ctloop.core.errors import CtloopError, NotFound
from ctloop.metadata.base import ArtifactRecord
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


def _loops(state: UiState) -> tuple[list[dict[str, Any]], str]:
    """Declared loops and their spans, when the loop package is installed and declares any."""
    if importlib.util.find_spec("ctloop.loop") is None:
        return [], "This ctloop has no loop package yet."
    declared = state.settings.extra.get("loops") or {}
    if not declared:
        return [], "No loops declared: add a [ctloop.loops.NAME] table to ctloop.toml."
    try:
        module = importlib.import_module("ctloop.loop")
        timeline = getattr(module, "span_timeline", None)
        if timeline is None:
            return [{"name": n, "spans": []} for n in declared], (
                "The loop package does not expose span_timeline(); spans are not shown.")
        return [{"name": n, "spans": list(timeline(state.store, n))} for n in declared], ""
    except CtloopError as exc:
        return [{"name": n, "spans": []} for n in declared], exc.message


def _reports(state: UiState) -> list[ArtifactRecord]:
    return state.store.list_artifacts(type="MonitorReport", limit=MAX_REPORTS)


@router.get("/monitoring", response_class=HTMLResponse)
def monitoring_index(request: Request) -> HTMLResponse:
    state = state_of(request)
    reports = _reports(state)
    models = sorted({str(r.properties.get("model")) for r in reports if r.properties.get("model")})
    registered = [m["name"] for m in state.registry().models()]
    firings = state.queries.triggered_runs(limit=50)
    loops, loop_note = _loops(state)
    return page(request, "monitoring.html", {
        "models": sorted(set(models) | set(registered)), "firings": firings,
        "loops": loops, "loop_note": loop_note, "model": None, "charts": {}, "latest": [],
    })


@router.get("/monitoring/{model}", response_class=HTMLResponse)
def monitoring_model(
    request: Request, model: str, kind: Annotated[str | None, Query()] = None
) -> HTMLResponse:
    state = state_of(request)
    reports = [r for r in _reports(state) if r.properties.get("model") == model]
    if not reports:
        try:
            state.registry().versions(model)
        except NotFound:
            raise NotFound(f"No model {model!r} and no monitor results for it.") from None
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
        ylabel = "share of features drifted" if k == "drift" else "metric"
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
    loops, loop_note = _loops(state)
    return page(request, "monitoring.html", {
        "models": [model], "model": model, "charts": charts, "latest": latest,
        "firings": firings, "loops": loops, "loop_note": loop_note,
        "chart_json": {k: script_json(v) for k, v in charts.items()},
    })
