"""What the registry answers about its models, as typed records.

The CLI, the dashboard, the prediction service and the loop read these instead
of dicts; ``to_json`` gives the shape ``--json`` prints (same keys, same order),
and a version's lineage is kept in its properties as :class:`LineageSummary`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from ctloop.core.jsontypes import JSONObject, JSONValue
from ctloop.models.evaluation_record import Result

__all__ = ["Comparison", "ComparisonRow", "LineageInput", "LineageSummary", "ModelSummary",
           "Side", "compare_results", "lineage_json", "lineage_of"]

Side = Literal["a", "b"]
"""Which of two compared versions did better on a metric."""


class LineageInput(TypedDict):
    """An input artifact of the step that produced a model version."""

    id: str
    type: str
    name: str
    uri: str
    sha256: str


class LineageSummary(TypedDict, total=False):
    """Where a version came from, stored in its properties as ``lineage``: the producing
    run and step when the metadata store knows them, and the step's inputs."""

    artifact_id: str
    run_id: str
    step: str
    component: str
    code_version: str
    step_id: str
    inputs: list[LineageInput]


def lineage_of(properties: Mapping[str, object]) -> LineageSummary:
    """A version's recorded ``lineage``; a missing or malformed entry reads as absent."""
    raw = properties.get("lineage")
    if not isinstance(raw, Mapping):
        return {}
    text = {str(k): v for k, v in raw.items() if isinstance(v, str)}
    out: LineageSummary = {}
    if "artifact_id" in text:
        out["artifact_id"] = text["artifact_id"]
    if "run_id" in text:
        out["run_id"] = text["run_id"]
    if "step" in text:
        out["step"] = text["step"]
    if "component" in text:
        out["component"] = text["component"]
    if "code_version" in text:
        out["code_version"] = text["code_version"]
    if "step_id" in text:
        out["step_id"] = text["step_id"]
    inputs = raw.get("inputs")
    if isinstance(inputs, list):
        out["inputs"] = [_lineage_input(i) for i in inputs if isinstance(i, Mapping)]
    return out


def lineage_json(summary: LineageSummary) -> JSONObject:
    """``summary`` as the JSON document stored in a version's properties (same keys, same
    order): a TypedDict is not a ``JSONObject`` to mypy, though every value here is one."""
    out: dict[str, JSONValue] = {k: v for k, v in summary.items() if isinstance(v, str)}
    if "inputs" in summary:
        out["inputs"] = [{k: str(v) for k, v in item.items()} for item in summary["inputs"]]
    return out


def _lineage_input(raw: Mapping[str, object]) -> LineageInput:
    def text(key: str) -> str:
        value = raw.get(key)
        return value if isinstance(value, str) else ""

    return {"id": text("id"), "type": text("type"), "name": text("name"), "uri": text("uri"),
            "sha256": text("sha256")}


class ModelSummaryJson(TypedDict):
    name: str
    versions: int
    latest_version: int
    aliases: dict[str, int]
    updated_at: str | None


@dataclass(frozen=True)
class ModelSummary:
    """One registered model: its latest version, how many versions, its aliases."""

    name: str
    versions: int
    latest_version: int
    aliases: Mapping[str, int] = field(default_factory=dict)
    updated_at: str | None = None  # ISO time the latest version was created

    def to_json(self) -> ModelSummaryJson:
        return {"name": self.name, "versions": self.versions,
                "latest_version": self.latest_version, "aliases": dict(self.aliases),
                "updated_at": self.updated_at}


class ComparisonRowJson(TypedDict):
    metric: str
    a: float | None
    b: float | None
    delta: float | None
    better: Side | None
    n_a: int | None
    n_b: int | None


@dataclass(frozen=True)
class ComparisonRow:
    """One metric of two versions side by side; ``better`` is None on a tie or a gap."""

    metric: str
    a: float | None
    b: float | None
    delta: float | None
    better: Side | None
    n_a: int | None
    n_b: int | None

    def to_json(self) -> ComparisonRowJson:
        return {"metric": self.metric, "a": self.a, "b": self.b, "delta": self.delta,
                "better": self.better, "n_a": self.n_a, "n_b": self.n_b}


class ComparisonJson(TypedDict):
    name: str
    a: int
    b: int
    overall: list[ComparisonRowJson]
    slices: dict[str, dict[str, list[ComparisonRowJson]]]


@dataclass(frozen=True)
class Comparison:
    """Recorded metrics of versions ``a`` and ``b`` of ``name``, overall and per slice
    (column -> value -> rows)."""

    name: str
    a: int
    b: int
    overall: list[ComparisonRow]
    slices: Mapping[str, Mapping[str, list[ComparisonRow]]] = field(default_factory=dict)

    def to_json(self) -> ComparisonJson:
        return {
            "name": self.name, "a": self.a, "b": self.b,
            "overall": [r.to_json() for r in self.overall],
            "slices": {column: {value: [r.to_json() for r in rows]
                                for value, rows in values.items()}
                       for column, values in self.slices.items()},
        }


def compare_results(a: Result | None, b: Result | None) -> list[ComparisonRow]:
    """One row per metric either side recorded, sorted by name."""
    from ctloop.models.tasks import HIGHER_IS_BETTER  # pandas: only when comparing

    ma = {} if a is None else {k: v.value for k, v in a.metrics.items()}
    mb = {} if b is None else {k: v.value for k, v in b.metrics.items()}
    rows = []
    for metric in sorted(set(ma) | set(mb)):
        x, y = ma.get(metric), mb.get(metric)
        delta = None if x is None or y is None else y - x
        better: Side | None = None
        if delta is not None and metric in HIGHER_IS_BETTER and delta != 0:
            better = "b" if (delta > 0) == HIGHER_IS_BETTER[metric] else "a"
        rows.append(ComparisonRow(metric, x, y, delta, better,
                                  None if a is None else a.n, None if b is None else b.n))
    return rows
