"""The gate's evaluation of a model version, as one typed record.

The ``push`` step stores a version's evaluation in the registry as JSON (its
properties' ``evaluation``: overall and per-slice metrics with their intervals, the
label and row count) next to the gate's verdict (``blessing``: a status per rule).
Monitors, the loop, the UI and the CLI read it back through :meth:`Evaluation.from_json`
instead of walking the dict by key path, so a missing or partial record reads as
"no value" in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

__all__ = ["Evaluation", "GateRule", "MetricInterval", "Result", "RuleStatus"]

RuleStatus = Literal["pass", "fail", "skipped"]
"""What a gate rule said about a candidate (``skipped``: no champion to compare with)."""

_STATUSES: tuple[RuleStatus, ...] = ("pass", "fail", "skipped")


def _number(value: object) -> float | None:
    """A float, or None for anything else (missing, null, text). NaN stays NaN: a metric
    undefined on the holdout was recorded as such."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _table(value: object) -> Mapping[str, object]:
    return cast("Mapping[str, object]", value) if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class MetricInterval:
    """A metric's value on the holdout and its bootstrap interval (``lo``, ``hi``)."""

    value: float | None
    lo: float | None = None
    hi: float | None = None

    @classmethod
    def from_json(cls, data: object) -> MetricInterval:
        table = _table(data)
        return cls(_number(table.get("value")), _number(table.get("lo")),
                   _number(table.get("hi")))


@dataclass(frozen=True)
class Result:
    """The metrics of one model on some rows: all of the holdout, or one slice of it."""

    metrics: Mapping[str, MetricInterval] = field(default_factory=dict)
    n: int | None = None

    @classmethod
    def from_json(cls, data: object) -> Result:
        table = _table(data)
        metrics = {str(k): MetricInterval.from_json(v)
                   for k, v in _table(table.get("metrics")).items()}
        n = table.get("n")
        return cls(metrics, n if isinstance(n, int) and not isinstance(n, bool) else None)

    def value(self, metric: str) -> float | None:
        entry = self.metrics.get(metric)
        return None if entry is None else entry.value


@dataclass(frozen=True)
class GateRule:
    """One rule of the gate's verdict on the version."""

    rule: str
    kind: str
    metric: str
    status: RuleStatus
    detail: str = ""

    @classmethod
    def from_json(cls, data: object) -> GateRule:
        table = _table(data)
        status = str(table.get("status", ""))
        return cls(str(table.get("rule", "")), str(table.get("kind", "")),
                   str(table.get("metric", "")),
                   status if status in _STATUSES else "skipped",
                   str(table.get("detail", "")))


@dataclass(frozen=True)
class Evaluation:
    """A version's evaluation: overall, per slice (column -> value -> result), the gate."""

    overall: Result = field(default_factory=Result)
    slices: Mapping[str, Mapping[str, Result]] = field(default_factory=dict)
    label: str | None = None
    n_rows: int | None = None
    blessed: bool | None = None  # None: no gate verdict recorded
    rules: tuple[GateRule, ...] = ()

    @classmethod
    def from_json(cls, properties: object) -> Evaluation:
        """Read a registry version's ``properties`` (``evaluation`` and ``blessing``);
        anything missing reads as empty, never as an error."""
        table = _table(properties)
        evaluation = _table(table.get("evaluation"))
        blessing = _table(table.get("blessing"))
        slices = {str(column): {str(key): Result.from_json(r) for key, r in _table(part).items()}
                  for column, part in _table(evaluation.get("slices")).items()}
        label = evaluation.get("label")
        n_rows = evaluation.get("n_rows")
        blessed = blessing.get("blessed")
        rules = blessing.get("rules")
        return cls(
            overall=Result.from_json(evaluation.get("overall")),
            slices=slices,
            label=None if label is None else str(label),
            n_rows=n_rows if isinstance(n_rows, int) and not isinstance(n_rows, bool) else None,
            blessed=blessed if isinstance(blessed, bool) else None,
            rules=tuple(GateRule.from_json(r) for r in rules) if isinstance(rules, list) else (),
        )

    def metric(self, name: str) -> float | None:
        """The overall value of ``name``, or None when it was not evaluated."""
        return self.overall.value(name)
