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

__all__ = ["ClassScores", "Confusion", "Evaluation", "GateRule", "MetricInterval", "Residuals",
           "Result", "RuleStatus"]

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


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _items(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


@dataclass(frozen=True)
class Confusion:
    """A binary model's decisions on the holdout at its threshold."""

    tp: int | None
    fp: int | None
    tn: int | None
    fn: int | None

    @classmethod
    def from_json(cls, data: object) -> Confusion | None:
        table = _table(data)
        if not table:
            return None
        return cls(*(_count(table.get(k)) for k in ("tp", "fp", "tn", "fn")))


@dataclass(frozen=True)
class ClassScores:
    """One class of a classifier: precision, recall, f1 (None where undefined), counts."""

    precision: float | None
    recall: float | None
    f1: float | None
    support: int | None
    predicted: int | None

    @classmethod
    def from_json(cls, data: object) -> ClassScores:
        t = _table(data)
        return cls(_number(t.get("precision")), _number(t.get("recall")), _number(t.get("f1")),
                   _count(t.get("support")), _count(t.get("predicted")))


@dataclass(frozen=True)
class Residuals:
    """A regression's residuals (label - prediction): mean, quantiles and a histogram."""

    n: int
    mean: float | None = None
    quantiles: Mapping[str, float | None] = field(default_factory=dict)
    edges: tuple[float | None, ...] = ()
    counts: tuple[int | None, ...] = ()

    @classmethod
    def from_json(cls, data: object) -> Residuals | None:
        table = _table(data)
        if not table:
            return None
        histogram = _table(table.get("histogram"))
        return cls(_count(table.get("n")) or 0, _number(table.get("mean")),
                   {str(k): _number(v) for k, v in _table(table.get("quantiles")).items()},
                   tuple(_number(e) for e in _items(histogram.get("edges"))),
                   tuple(_count(c) for c in _items(histogram.get("counts"))))


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
    """The metrics of one model on some rows: all of the holdout, or one slice of it; for
    the whole holdout also its decisions (binary: ``confusion``; multiclass:
    ``confusion_matrix`` over ``classes``), per-class scores, or a regression's residuals."""

    metrics: Mapping[str, MetricInterval] = field(default_factory=dict)
    n: int | None = None
    classes: tuple[str, ...] = ()
    confusion: Confusion | None = None
    confusion_matrix: tuple[tuple[int | None, ...], ...] = ()
    per_class: Mapping[str, ClassScores] = field(default_factory=dict)
    residuals: Residuals | None = None

    @classmethod
    def from_json(cls, data: object) -> Result:
        table = _table(data)
        metrics = {str(k): MetricInterval.from_json(v)
                   for k, v in _table(table.get("metrics")).items()}
        return cls(
            metrics, _count(table.get("n")),
            classes=tuple(str(c) for c in _items(table.get("classes"))),
            confusion=Confusion.from_json(table.get("confusion")),
            confusion_matrix=tuple(tuple(_count(n) for n in _items(row))
                                   for row in _items(table.get("confusion_matrix"))),
            per_class={str(k): ClassScores.from_json(v)
                       for k, v in _table(table.get("per_class")).items()},
            residuals=Residuals.from_json(table.get("residuals")),
        )

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
    """A version's evaluation: overall, per slice (column -> value -> result), the gate
    (its verdict, rules, the class check, its one-line summary, the champion compared)."""

    overall: Result = field(default_factory=Result)
    slices: Mapping[str, Mapping[str, Result]] = field(default_factory=dict)
    label: str | None = None
    n_rows: int | None = None
    blessed: bool | None = None  # None: no gate verdict recorded
    rules: tuple[GateRule, ...] = ()
    class_rule: GateRule | None = None  # the gate's check that every class is still predicted
    summary: str = ""
    champion_version: int | None = None

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
        classes = _table(blessing.get("classes"))
        return cls(
            overall=Result.from_json(evaluation.get("overall")),
            slices=slices,
            label=None if label is None else str(label),
            n_rows=_count(n_rows),
            blessed=blessed if isinstance(blessed, bool) else None,
            rules=tuple(GateRule.from_json(r) for r in rules) if isinstance(rules, list) else (),
            class_rule=GateRule.from_json({"kind": "classes", **classes}) if classes else None,
            summary=str(blessing.get("summary") or ""),
            champion_version=_count(blessing.get("champion_version")),
        )

    def metric(self, name: str) -> float | None:
        """The overall value of ``name``, or None when it was not evaluated."""
        return self.overall.value(name)
