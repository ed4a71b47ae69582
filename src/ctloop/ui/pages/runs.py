"""Runs: the filtered list, one run (DAG, steps, logs, inputs/outputs), and compare."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ctloop.core.errors import UserInputError
from ctloop.metadata.base import RunStatus, StepRecord, StepStatus
from ctloop.ui.filters import duration
from ctloop.ui.queries import PAGE_SIZES, RunFilter
from ctloop.ui.state import page, state_of
from ctloop.ui.svg import GraphNode, graph_svg

__all__ = ["router"]

router = APIRouter()


def _day(value: date | None, *, end: bool = False) -> datetime | None:
    if value is None:
        return None
    start = datetime.combine(value, time(0), tzinfo=UTC)
    return start + timedelta(days=1) if end else start


def _date(text: str | None, name: str) -> date | None:
    """A YYYY-MM-DD query parameter; empty means no bound (what an emptied date field sends)."""
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UserInputError(
            f"The '{name}' date must look like 2013-06-01 (YYYY-MM-DD). Got {text!r}."
        ) from None


@router.get("/runs", response_class=HTMLResponse)
def runs_list(
    request: Request,
    status: Annotated[str | None, Query()] = None,
    pipeline: Annotated[str | None, Query()] = None,
    trigger: Annotated[str | None, Query()] = None,
    since_text: Annotated[str | None, Query(alias="since", description="YYYY-MM-DD")] = None,
    until_text: Annotated[str | None, Query(alias="until", description="YYYY-MM-DD")] = None,
    page_no: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=max(PAGE_SIZES))] = 50,
) -> HTMLResponse:
    """Runs newest first, filtered and paginated."""
    status = status or None
    since, until = _date(since_text, "since"), _date(until_text, "until")
    if status is not None and status not in {s.value for s in RunStatus}:
        raise UserInputError(
            f"Unknown run status {status!r}; use one of {', '.join(s.value for s in RunStatus)}."
        )
    if since and until and until < since:
        raise UserInputError(f"The date range is empty: 'until' {until} is before 'since' {since}.")
    f = RunFilter(status=status, pipeline=pipeline or None, trigger=trigger or None,
                  since=_day(since), until=_day(until, end=True), page=page_no,
                  per_page=per_page)
    result = state_of(request).queries.run_page(f)
    args = {k: v for k, v in {"status": status, "pipeline": pipeline, "trigger": trigger,
                              "since": since, "until": until, "per_page": per_page}.items() if v}

    def link(n: int) -> str:
        return "/runs?" + urlencode({**args, "page": n})

    return page(request, "runs.html", {
        "result": result, "statuses": [s.value for s in RunStatus], "link": link,
        "since": since, "until": until, "page_sizes": PAGE_SIZES,
    })


def _step_node(step: StepRecord) -> GraphNode:
    lines = [f"{step.status.value} · {duration(step.duration_s)}"]
    if step.attempts > 1:
        lines.append(f"{step.attempts} attempts")
    if step.status is StepStatus.CACHED:
        lines.append("cache hit")
    return GraphNode(id=step.name, title=step.name, lines=lines, state=step.status.value,
                     href=f"#step-{step.name}", upstream=list(step.upstream))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> HTMLResponse:
    state = state_of(request)
    run = state.store.get_run(run_id)
    steps = state.store.get_steps(run.id)
    events = state.queries.run_artifacts([s.id for s in steps])
    by_step: dict[str, dict[str, list[tuple[str, str, str]]]] = {}
    for step_id, kind, name, artifact_id, type_ in events:
        by_step.setdefault(step_id, {}).setdefault(kind, []).append((name, artifact_id, type_))
    durations = [s.duration_s for s in steps if s.duration_s is not None]
    cached = sum(1 for s in steps if s.status is StepStatus.CACHED)
    return page(request, "run.html", {
        "run": run, "row": state.queries.run_rows([run])[0], "steps": steps, "events": by_step,
        "dag": graph_svg([_step_node(s) for s in steps], label=f"DAG of run {run.id}"),
        "cached": cached, "busy_s": sum(durations),
        "duration_s": (run.ended_at - run.started_at).total_seconds()
        if run.started_at and run.ended_at else None,
    })


def _flat(prefix: str, value: object, out: dict[str, object]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


@router.get("/compare", response_class=HTMLResponse)
def compare(
    request: Request, run: Annotated[list[str] | None, Query()] = None
) -> HTMLResponse:
    """Parameters and metrics of two or more runs side by side; differing rows marked."""
    ids = [r.strip() for r in (run or []) if r.strip()]
    if len(ids) < 2:
        raise UserInputError(
            "Compare needs at least two runs: tick two or more on the runs list, or give "
            "?run=ID&run=ID."
        )
    if len(ids) > 20:
        raise UserInputError(f"Compare at most 20 runs at once; got {len(ids)}.")
    state = state_of(request)
    runs = [state.store.get_run(i) for i in ids]  # NotFound names a wrong id
    full_ids = [r.id for r in runs]
    metrics = state.queries.run_metrics(full_ids)
    outputs = state.queries.step_outputs(full_ids)
    params: dict[str, dict[str, object]] = {}
    for r in runs:
        flat: dict[str, object] = {}
        _flat("", r.parameters, flat)
        params[r.id] = flat
    for r in runs:
        for step, out in outputs.get(r.id, {}).items():
            flat = {}
            _flat(step, out, flat)
            for key, value in flat.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics[r.id].setdefault(key, value)

    def table(values: Mapping[str, Mapping[str, object]]) -> list[tuple[str, list[object], bool]]:
        keys = sorted({k for v in values.values() for k in v})
        rows = []
        for key in keys:
            cells = [values[r.id].get(key) for r in runs]
            rows.append((key, cells, len({repr(c) for c in cells}) > 1))
        return rows

    return page(request, "compare.html", {
        "runs": runs, "params": table(params), "metrics": table(metrics),
    })
