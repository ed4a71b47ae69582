"""Artifacts: the list, one artifact rendered by type, and drift between two statistics."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ctloop.core.errors import UserInputError
from ctloop.data.drift import compute_drift
from ctloop.data.schema import Schema
from ctloop.data.stats import CategoricalStats, ColumnStatistics, DatasetStatistics
from ctloop.metadata.base import ArtifactRecord, StepRecord
from ctloop.ui.state import UiState, page, state_of
from ctloop.ui.svg import Histogram, histogram_svg

__all__ = ["column_histogram", "router"]

router = APIRouter()
PREVIEW_ROWS = 20
MAX_JSON_BYTES = 200_000


@router.get("/artifacts", response_class=HTMLResponse)
def artifacts_list(
    request: Request,
    type: Annotated[str | None, Query()] = None,
    page_no: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HTMLResponse:
    rows, total, types = state_of(request).queries.artifact_page(
        type=type or None, page=page_no, per_page=per_page)
    pages = max(1, -(-total // per_page))

    def link(n: int) -> str:
        return "/artifacts?" + urlencode({**({"type": type} if type else {}), "page": n,
                                          "per_page": per_page})

    return page(request, "artifacts.html", {
        "rows": rows, "total": total, "types": types, "type": type, "page_no": page_no,
        "pages": pages, "link": link,
    })


def _local(state: UiState, art: ArtifactRecord) -> Path:
    return state.artifacts.get(art.uri, art.sha256, name=f"{art.type} {art.id[:12]}")


def _statistics(state: UiState, art: ArtifactRecord) -> DatasetStatistics:
    if art.type != "Statistics":
        raise UserInputError(f"Artifact {art.id[:12]} is a {art.type}, not Statistics.")
    return DatasetStatistics.load(_local(state, art))


def _label(value: float, kind: str) -> str:
    if kind == "datetime":
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d")
    return f"{value:.4g}"


def column_histogram(
    ref: ColumnStatistics, cur: ColumnStatistics | None = None, *, bins: int = 12
) -> Histogram | None:
    """Shares per bin (numbers, on the reference's edges) or per category (union of both).

    Datetime columns are labelled with dates, not epoch seconds; categories seen only in
    the current data are flagged ``new``.
    """
    if ref.categorical is not None:
        return _categorical_histogram(ref.categorical,
                                      cur.categorical if cur is not None else None,
                                      compared=cur is not None)
    if ref.numeric is None or ref.numeric.min is None or ref.numeric.max is None:
        return None
    return _numeric_histogram(ref, cur, bins)


def _categorical_histogram(ref: CategoricalStats, cur: CategoricalStats | None, *,
                           compared: bool) -> Histogram | None:
    """The reference's top categories, then the current data's and its new ones."""
    ref_freq = ref.frequencies()
    cur_freq = cur.frequencies() if cur is not None else {}
    ref_total = max(1, sum(ref_freq.values()))
    cur_total = max(1, sum(cur_freq.values()))
    top = [v for v, _ in ref.top(15)]
    # "New" only when the reference's sketch is exact: a purged sketch forgot rare values.
    new = [v for v in cur_freq if v not in ref_freq] if ref.exact else []
    top_cur = [v for v, _ in sorted(cur_freq.items(), key=lambda kv: -kv[1])[:15]
               if v not in top and v not in new]
    labels = top + top_cur[:5] + new[:10]
    if not labels:
        return None
    return Histogram(
        labels=labels,
        reference=[ref_freq.get(v, 0) / ref_total for v in labels],
        current=[cur_freq.get(v, 0) / cur_total for v in labels] if compared else [],
        new=[v in new for v in labels],
    )


def _edges(ref: ColumnStatistics, cur: ColumnStatistics | None, bins: int) -> list[float]:
    """Bin edges over both columns' range; an integer column with few values gets one bar
    per value (4, 5, 6, not 4.083)."""
    assert ref.numeric is not None and ref.numeric.min is not None \
        and ref.numeric.max is not None
    lo, hi = ref.numeric.min, ref.numeric.max
    if cur is not None and cur.numeric is not None and cur.numeric.min is not None:
        lo, hi = min(lo, cur.numeric.min), max(hi, cur.numeric.max or hi)
    if ref.type == "integer" and hi - lo < 30:
        return [v - 0.5 for v in range(int(lo), int(hi) + 2)]
    edges: list[float] = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1).tolist()
    return edges


def _shares(col: ColumnStatistics | None, edges: list[float]) -> list[float]:
    if col is None or col.numeric is None or col.numeric.min is None:
        return []
    counts = col.numeric.histogram(edges)["counts"]
    total = sum(counts) or 1.0
    return [c / total for c in counts]


def _numeric_histogram(ref: ColumnStatistics, cur: ColumnStatistics | None,
                       bins: int) -> Histogram:
    edges = _edges(ref, cur, bins)
    labels = [str(int(e + 0.5)) if ref.type == "integer" and e % 1 else _label(e, ref.type)
              for e in edges[:-1]]
    return Histogram(labels=labels, reference=_shares(ref, edges),
                     current=_shares(cur, edges))


Details = dict[str, object]


def _statistics_details(state: UiState, art: ArtifactRecord,
                        producer: StepRecord | None) -> Details:
    stats = _statistics(state, art)
    return {
        "stats": stats,
        "hists": {name: histogram_svg(h, title=f"{name} distribution")
                  for name, col in stats.columns.items()
                  if (h := column_histogram(col)) is not None},
        "others": [o for o in state.store.list_artifacts(type="Statistics", limit=50)
                   if o.id != art.id],
    }


def _schema_details(state: UiState, art: ArtifactRecord, producer: StepRecord | None) -> Details:
    return {"schema": Schema.load(_local(state, art))}


def _anomalies_details(state: UiState, art: ArtifactRecord,
                       producer: StepRecord | None) -> Details:
    """Links to the drift between the validated batch and its reference, and the schema."""
    if producer is None:
        return {}
    ctx: Details = {}
    inputs = {e.name: e.artifact_id for e in state.store.get_events(step_id=producer.id)
              if e.kind == "input"}
    if "stats" not in inputs:
        inputs.update(_guess_inputs(state, producer))
        ctx["guessed"] = bool(inputs)
    ctx["drift_link"] = ("/drift?" + urlencode({"reference": inputs["reference"],
                                                 "current": inputs["stats"]})
                         if "reference" in inputs and "stats" in inputs else None)
    ctx["schema_id"] = inputs.get("schema")
    return ctx


def _model_details(state: UiState, art: ArtifactRecord, producer: StepRecord | None) -> Details:
    return {"versions": [mv for mv in state.store.list_model_versions()
                         if mv.artifact_id == art.id]}


def _dataset_details(state: UiState, art: ArtifactRecord,
                     producer: StepRecord | None) -> Details:
    """The first rows and the row count, read from the Parquet footer and first batch."""
    import pyarrow.parquet as pq

    path = _local(state, art)
    file = pq.ParquetFile(path if path.is_file() else next(path.glob("*.parquet")))
    first = next(file.iter_batches(batch_size=PREVIEW_ROWS), None)
    return {"preview": first.to_pandas() if first is not None else None,
            "rows": file.metadata.num_rows}


def _json_details(state: UiState, art: ArtifactRecord, producer: StepRecord | None) -> Details:
    """A small JSON artifact's content, indented."""
    if art.size > MAX_JSON_BYTES or not art.uri.endswith(".json"):
        return {}
    try:
        return {"content": json.dumps(json.loads(_local(state, art).read_text()), indent=1)}
    except ValueError:
        return {"content": None}


_DETAILS: dict[str, Callable[[UiState, ArtifactRecord, StepRecord | None], Details]] = {
    "Statistics": _statistics_details,
    "Schema": _schema_details,
    "Anomalies": _anomalies_details,
    "Model": _model_details,
    "Dataset": _dataset_details,
}


@router.get("/artifacts/{artifact_id}", response_class=HTMLResponse)
def artifact_page(request: Request, artifact_id: str) -> HTMLResponse:
    """One artifact: who made it, who read it, and its content rendered by type."""
    state = state_of(request)
    art = state.store.get_artifact(artifact_id)
    producer = state.store.get_step(art.producer_step_id) if art.producer_step_id else None
    readers = [e for e in state.store.get_events(artifact_id=art.id) if e.kind == "input"]
    details = _DETAILS.get(art.type, _json_details)(state, art, producer)
    return page(request, "artifact.html", {"a": art, "producer": producer, "readers": readers,
                                           **details})


def _guess_inputs(state: UiState, step: StepRecord) -> dict[str, str]:
    """Inputs of a failed validation step, which records none: its upstream steps' outputs.

    The engine names repeated calls of a component in call order (``statistics``,
    ``statistics-2``), so the first Statistics is the batch being validated and the
    second its reference; the page says the pairing was inferred.
    """
    steps = {s.name: s for s in state.store.get_steps(step.run_id)}
    upstream = [steps[name].id for name in sorted(step.upstream) if name in steps]
    outputs = state.queries.run_artifacts(upstream)
    order = {step_id: i for i, step_id in enumerate(upstream)}
    found: dict[str, list[str]] = {}
    for _step, kind, _, artifact_id, type_ in sorted(outputs, key=lambda o: order[o[0]]):
        if kind == "output":
            found.setdefault(type_, []).append(artifact_id)
    guess: dict[str, str] = {}
    stats = found.get("Statistics", [])
    if len(stats) >= 2:
        guess["stats"], guess["reference"] = stats[0], stats[1]
    if found.get("Schema"):
        guess["schema"] = found["Schema"][0]
    return guess


@router.get("/drift", response_class=HTMLResponse)
def drift_page(
    request: Request,
    reference: Annotated[str, Query(min_length=4)],
    current: Annotated[str, Query(min_length=4)],
) -> HTMLResponse:
    """Per-feature drift verdicts with overlaid reference/current histograms."""
    state = state_of(request)
    ref_art, cur_art = state.store.get_artifact(reference), state.store.get_artifact(current)
    ref, cur = _statistics(state, ref_art), _statistics(state, cur_art)
    report = compute_drift(ref, cur)
    hists = {}
    for f in report.features:
        h = column_histogram(ref[f.column], cur[f.column])
        if h is not None:
            hists[f.column] = histogram_svg(h, title=f"{f.column}: reference vs current")
    ordered = sorted(report.features, key=lambda f: (not f.drifted, f.score is None,
                                                      -(f.score or 0)))
    return page(request, "drift.html", {"report": report, "features": ordered, "hists": hists,
                                         "ref": ref_art, "cur": cur_art,
                                         "ref_rows": ref.rows, "cur_rows": cur.rows})
