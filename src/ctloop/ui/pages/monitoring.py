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
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from ctloop.core.errors import CtloopError, NotFound
from ctloop.core.jsontypes import as_object
from ctloop.metadata.base import ArtifactRecord
from ctloop.ui.charts import Chart, Series, chart, script_json, story_chart
from ctloop.ui.loops import LoopTimeline, timelines
from ctloop.ui.state import UiState, page, state_of

__all__ = ["router", "script_json"]

router = APIRouter()
MAX_REPORTS = 500
MAX_DETAILED = 60  # drift reports whose per-feature scores are read for the top features
TOP_FEATURES = 5


def _when(report: ArtifactRecord) -> float | None:
    end = as_object(report.properties.get("window")).get("end")
    stamp = datetime.fromisoformat(end) if isinstance(end, str) else report.created_at
    return stamp.timestamp() if stamp else None


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
    firings = state.queries.run_rows(state.queries.triggered_runs(limit=50))
    loops, loop_note = _loops(state)
    return page(request, "monitoring.html", {
        "models": sorted(set(models) | set(registered)), "firings": firings,
        "loops": loops, "loop_note": loop_note, "model": None, "charts": {}, "latest": [],
        "stories": _stories(loops),
    })


def _metric_label(report: ArtifactRecord) -> str:
    """The charted metric with its direction (``rmse (lower is better)``), else "metric"."""
    from ctloop.models.tasks import HIGHER_IS_BETTER, better_word

    metric = as_object(report.properties.get("details")).get("metric")
    if isinstance(metric, str) and metric in HIGHER_IS_BETTER:
        return f"{metric} ({better_word(metric)} is better)"
    return "metric"


def _points(items: list[ArtifactRecord], key: str) -> list[tuple[float, float | None]]:
    """``key`` of each report on its window's end; reports without it are left out."""
    return [(t, value) for r in items
            if (t := _when(r)) is not None
            and isinstance(value := r.properties.get(key), int | float)]


def _kind_chart(model: str, kind: str, items: list[ArtifactRecord]) -> Chart:
    """One monitor kind over time: its value, its baseline (for decay: the evaluated
    metric) and, but for decay, its alarm threshold."""
    decay = kind == "decay"
    series = [Series("live" if decay else kind, _points(items, "value"))]
    base = _points(items, "baseline")
    if base:
        series.append(Series("evaluated" if decay else "baseline", base, dash=(6, 4)))
    threshold = _points(items, "threshold")
    if threshold and not decay:
        series.append(Series("alarm threshold", threshold, dash=(2, 4), color="#999"))
    ylabel = "share of features drifted" if kind == "drift" else _metric_label(items[-1])
    return chart(f"{kind} of {model}", ylabel, series)


def _feature_scores(state: UiState, report: ArtifactRecord) -> dict[str, float | None]:
    """A drift report's per-feature scores, read from its file; empty when unreadable."""
    try:
        path = state.artifacts.get(report.uri, report.sha256, name=report.id)
        details = json.loads(path.read_text()).get("details", {})
    except (CtloopError, OSError, ValueError):
        return {}
    return {str(f): s.get("score") for f, s in (details.get("scores") or {}).items()
            if isinstance(s, dict)}


def _top_features(state: UiState, model: str, drift: list[ArtifactRecord]) -> Chart | None:
    """The features that drifted most, over time (the newest reports only)."""
    scores: dict[str, list[tuple[float, float | None]]] = {}
    for r in drift[-MAX_DETAILED:]:
        t = _when(r)
        if t is None:
            continue
        for feature, score in _feature_scores(state, r).items():
            scores.setdefault(feature, []).append((t, score))
    top = sorted(scores, key=lambda f: -max((v or 0) for _, v in scores[f]))[:TOP_FEATURES]
    if not top:
        return None
    return chart(f"top {len(top)} drifted features of {model}", "drift score",
                 [Series(f, scores[f]) for f in top])


def _charts(state: UiState, model: str, reports: list[ArtifactRecord],
            kind: str | None) -> dict[str, Chart]:
    """One chart per monitor kind (or only ``kind``), then the top drifted features."""
    by_kind: dict[str, list[ArtifactRecord]] = {}
    for r in sorted(reports, key=lambda r: _when(r) or 0):
        by_kind.setdefault(str(r.properties.get("kind", "?")), []).append(r)
    charts = {k: _kind_chart(model, k, items) for k, items in by_kind.items()
              if not kind or k == kind}
    top = _top_features(state, model, by_kind.get("drift", [])) \
        if not kind or kind == "drift" else None
    if top is not None:
        charts["top drifted features"] = top
    return charts


def _latest(reports: list[ArtifactRecord]) -> list[ArtifactRecord]:
    """The newest report of each monitor kind."""
    newest: dict[str, ArtifactRecord] = {}
    for r in sorted(reports, key=lambda r: _when(r) or 0):
        newest[str(r.properties.get("kind", "?"))] = r
    return list(newest.values())


def _check_known(state: UiState, model: str) -> None:
    """NotFound unless ``model`` is registered."""
    try:
        state.registry().versions(model)
    except NotFound:
        raise NotFound(f"No model {model!r}, no monitor results and no loop for it.") from None


@router.get("/monitoring/{model}", response_class=HTMLResponse)
def monitoring_model(
    request: Request, model: str, kind: Annotated[str | None, Query()] = None
) -> HTMLResponse:
    """One model: its loop's timeline and story chart first, then monitor results over
    time and the trigger firings."""
    state = state_of(request)
    reports = [r for r in _reports(state) if r.properties.get("model") == model]
    loops, loop_note = _loops(state, model)
    if not reports and not loops:
        _check_known(state, model)
    charts = _charts(state, model, reports, kind)
    firings = state.queries.run_rows([r for r in state.queries.triggered_runs(limit=200)
                                      if r.parameters.get("model_name", model) == model][:50])
    return page(request, "monitoring.html", {
        "models": [model], "model": model, "charts": charts, "latest": _latest(reports),
        "firings": firings, "loops": loops, "loop_note": loop_note,
        "chart_json": {k: script_json(v.to_json()) for k, v in charts.items()},
        "stories": _stories(loops),
    })


def _stories(loops: list[LoopTimeline]) -> dict[int, tuple[Chart, Markup]]:
    """Each loop's story chart (by position on the page) and its JSON."""
    out: dict[int, tuple[Chart, Markup]] = {}
    for i, timeline in enumerate(loops):
        story = story_chart(timeline)
        if story is not None:
            out[i] = (story, script_json(story.to_json()))
    return out
