"""Schema skew: check a batch's statistics against the pinned schema.

Works on statistics, not rows, so a batch is read once (for its statistics)
and checked in microseconds. Each problem becomes an :class:`Anomaly` naming
the column, the kind, what was expected, what was found and how severe it is;
error-level anomalies stop a pipeline, warnings are recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypedDict

from ctloop.core.clock import utc_now
from ctloop.core.errors import ValidationFailed
from ctloop.data.drift import DriftReport, DriftReportJson, compute_drift
from ctloop.data.quality import QualityStats
from ctloop.data.schema import ColumnSchema, Schema
from ctloop.data.sources import DataSource
from ctloop.data.stats import ColumnStatistics, DatasetStatistics, compute_statistics

__all__ = ["Anomalies", "AnomaliesJson", "Anomaly", "validate", "validate_statistics"]

_COMPATIBLE = {("float", "integer")}  # (expected, found) pairs that are not a type change
_SHOW_VALUES = 8


class _Add(Protocol):
    """Records one anomaly (at the severity the schema configures for its kind)."""

    def __call__(self, column: str | None, kind: str, expected: str, got: str,
                 description: str, severity: str | None = None) -> None: ...


class AnomaliesJson(TypedDict):
    """:class:`Anomalies` as JSON (the anomalies file)."""

    source: str
    rows: int
    ok: bool
    n_errors: int
    n_warnings: int
    anomalies: list[dict[str, str | None]]
    drift: DriftReportJson | None


@dataclass
class Anomaly:
    """One way the data does not fit its schema."""

    column: str | None
    kind: str
    expected: str
    found: str
    description: str
    severity: str

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def one_line(self) -> str:
        where = f"{self.column}: " if self.column else ""
        return f"[{self.severity}] {where}{self.description}"


@dataclass
class Anomalies:
    """The result of validating one dataset: its anomalies and, optionally, its drift."""

    anomalies: list[Anomaly]
    source: str = ""
    rows: int = 0
    drift: DriftReport | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def errors(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == "error"]

    @property
    def warnings(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when nothing error-level was found."""
        return not self.errors

    def kinds(self, column: str | None = None) -> set[str]:
        return {a.kind for a in self.anomalies if column is None or a.column == column}

    def message(self) -> str:
        """A message a person can act on, listing the error-level anomalies first."""
        verdict = "fits its schema" if self.ok else "does not fit its schema"
        head = (
            f"{self.source or 'The data'} ({self.rows} rows) {verdict}: "
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)."
        )
        lines = [a.one_line() for a in self.errors + self.warnings]
        return "\n".join([head, *lines])

    def raise_for_errors(self) -> None:
        """Raise :class:`ValidationFailed` listing every error-level anomaly."""
        if self.errors:
            raise ValidationFailed(self.message())

    def to_dict(self) -> AnomaliesJson:
        return {
            "source": self.source,
            "rows": self.rows,
            "ok": self.ok,
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "anomalies": [a.to_dict() for a in self.anomalies],
            "drift": self.drift.to_dict() if self.drift else None,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str))
        return path


def validate(
    source: DataSource | DatasetStatistics,
    schema: Schema,
    *,
    reference: DataSource | DatasetStatistics | None = None,
    weights: Mapping[str, float] | None = None,
    arrived_at: datetime | None = None,
) -> Anomalies:
    """Validate data (or its statistics) against ``schema``; optionally measure drift too.

    Data is read with duplicate counting on, and the schema's id columns as keys.
    """
    stats = (
        source
        if isinstance(source, DatasetStatistics)
        else compute_statistics(source, duplicates=True, keys=_present_ids(source, schema))
    )
    ref = None
    if reference is not None:
        ref = (
            reference if isinstance(reference, DatasetStatistics) else compute_statistics(reference)
        )
    return validate_statistics(stats, schema, reference=ref, weights=weights, arrived_at=arrived_at)


def _present_ids(source: DataSource, schema: Schema) -> list[str]:
    from ctloop.data.sources import iter_batches

    names = set(iter_batches(source)[0].names)
    return [c for c in schema.columns_with_role("id") if c in names]


def validate_statistics(
    stats: DatasetStatistics,
    schema: Schema,
    *,
    reference: DatasetStatistics | None = None,
    weights: Mapping[str, float] | None = None,
    arrived_at: datetime | None = None,
) -> Anomalies:
    """The anomalies of ``stats`` against ``schema`` (and drift from ``reference`` if given).

    ``weights`` (e.g. the model's feature importance) weigh each feature in the drift share.
    ``arrived_at`` is when the batch arrived, for timeliness (default: when its
    statistics were computed).
    """
    found: list[Anomaly] = []

    def add(
        column: str | None,
        kind: str,
        expected: str,
        got: str,
        description: str,
        severity: str | None = None,
    ) -> None:
        configured = schema.severity_of(kind, column)
        # A tolerated case (e.g. within min_domain_mass) may lower an error to a warning.
        severity = "warning" if severity == "warning" and configured == "error" else configured
        if severity != "ignore":
            found.append(Anomaly(column, kind, expected, got, description, severity))

    if stats.rows == 0:
        add(None, "empty_dataset", "at least 1 row", "0 rows", "the dataset has no rows")
    unexpected = [n for n in stats.columns if n not in schema.columns]
    for name, col_schema in schema.columns.items():
        col = stats.columns.get(name)
        if col is None:
            if col_schema.required:
                add(
                    name,
                    "missing_column",
                    "present",
                    "absent",
                    _missing_text(col_schema, stats, unexpected),
                )
            continue
        _check_column(col, col_schema, stats.rows, add)
    for name in unexpected:
        col = stats.columns[name]
        add(
            name,
            "unexpected_column",
            "not in schema",
            f"{col.type} column",
            f"column {name!r} ({col.type}) is not in the schema",
        )

    # Incomplete rows are the rows-wide view of missing values: once a column's missing
    # share is an anomaly of its own, the same nulls are not reported twice.
    explained = any(a.kind in ("missing_values", "missing_column") for a in found)
    _check_quality(stats, schema, arrived_at, add, complete_rows=not explained)
    drift = None
    if reference is not None:
        shared = [n for n in schema.columns if n in stats.columns and n in reference.columns]
        drift = compute_drift(
            reference,
            stats,
            columns=shared,
            config={k: v for k, v in schema.drift_config().items() if k in shared},
            drift_share=schema.drift_share,
            exclude=[n for n in shared if n in schema.drift_excluded()],
            weights=weights,
        )
        for feature in drift.drifted:
            if feature.score is None:
                found_text = feature.note
                expected = "finite values like the reference"
            else:
                found_text = f"{feature.method} = {feature.score:.3g}"
                expected = f"{feature.method} within {feature.threshold:.3g}"
            add(
                feature.column,
                "drift",
                expected,
                found_text,
                f"distribution drifted ({found_text}"
                + (f", threshold {feature.threshold:.3g})" if feature.threshold else ")"),
            )
    return Anomalies(anomalies=found, source=stats.source, rows=stats.rows, drift=drift)


def _missing_text(col_schema: ColumnSchema, stats: DatasetStatistics, unexpected: list[str]) -> str:
    text = f"required column {col_schema.name!r} ({col_schema.type}) is missing"
    same_type = [n for n in unexpected if stats.columns[n].type == col_schema.type]
    if same_type:
        text += (
            f"; renamed to {same_type[0]!r}?"
            if len(same_type) == 1
            else (f"; renamed to one of {same_type}?")
        )
    return text


def _check_column(col: ColumnStatistics, spec: ColumnSchema, rows: int, add: _Add) -> None:
    name = col.name
    type_ok = (
        col.type == spec.type
        or spec.type == "null"
        or col.type == "null"  # an all-null column: reported as missing values below
        or (spec.type, col.type) in _COMPATIBLE
    )
    if not type_ok:
        add(
            name,
            "type_mismatch",
            spec.type,
            f"{col.type} ({col.arrow_type})",
            f"type changed from {spec.type} to {col.type} ({col.arrow_type})",
        )
    if rows and col.missing_rate > spec.max_missing + 1e-12:
        add(
            name,
            "missing_values",
            f"at most {spec.max_missing:.2%} missing",
            f"{col.missing_rate:.2%} missing ({col.missing} of {col.count})",
            f"{col.missing_rate:.2%} of values are missing, at most {spec.max_missing:.2%} allowed",
        )
    if not type_ok:
        return
    num = col.numeric
    if num is not None and col.type != "datetime":
        if num.inf and not spec.allow_infinite:
            add(
                name,
                "non_finite",
                "finite values",
                f"{num.inf} infinite value(s)",
                f"{num.inf} infinite value(s) in a numeric column",
            )
        _check_range(col, spec, add)
    cat = col.categorical
    counts: dict[str, int] | None = None
    if cat is not None:
        counts = cat.frequencies()
    elif num is not None and col.type == "integer" and spec.domain is not None:
        counts = _integer_counts(col, spec.domain)
    if counts is not None and spec.domain is not None:
        _check_domain(col, spec.domain, spec.min_domain_mass, counts, add)


def _check_domain(col: ColumnStatistics, domain: list[str], min_domain_mass: float,
                  counts: dict[str, int], add: _Add) -> None:
    """Values outside the declared domain: an error, or a warning within ``min_domain_mass``."""
    allowed = set(domain)
    unseen = {v: c for v, c in counts.items() if v not in allowed}
    if not unseen:
        return
    shown = ", ".join(f"{v!r} ({c} rows)" for v, c in list(unseen.items())[:_SHOW_VALUES])
    more = f" and {len(unseen) - _SHOW_VALUES} more" if len(unseen) > _SHOW_VALUES else ""
    share = sum(unseen.values()) / max(col.count - col.missing, 1)
    tolerated = share <= 1.0 - min_domain_mass
    note = (
        f" ({share:.3%} of values, within the {1 - min_domain_mass:.3%} "
        "min_domain_mass allows)"
        if tolerated
        else ""
    )
    add(
        col.name,
        "unseen_category",
        f"one of {len(allowed)} known values",
        shown + more,
        f"value(s) never seen before: {shown}{more}{note}",
        **({"severity": "warning"} if tolerated else {}),
    )


def _check_quality(
    stats: DatasetStatistics, schema: Schema, arrived_at: datetime | None, add: _Add,
    *, complete_rows: bool = True,
) -> None:
    """Duplicates, complete rows and timeliness against the schema's ``quality`` rules."""
    if stats.quality is not None and stats.rows:
        _check_rows(stats.quality, stats.rows, schema, add, complete_rows=complete_rows)
    _check_timeliness(stats, schema, arrived_at, add)


def _check_rows(quality: QualityStats, rows: int, schema: Schema, add: _Add, *, complete_rows: bool
                ) -> None:
    """Duplicate rows, repeated ids and incomplete rows."""
    rules = schema.quality
    scope = "" if quality.exact else " (counted within each merged part)"
    if rules.max_duplicate_rows is not None and quality.duplicate_rows is not None:
        share = quality.duplicate_rows / rows
        if share > rules.max_duplicate_rows + 1e-12:
            add(
                None,
                "duplicate_rows",
                f"at most {rules.max_duplicate_rows:.2%} duplicates",
                f"{quality.duplicate_rows} duplicate row(s) ({share:.2%})",
                f"{quality.duplicate_rows} row(s) repeat an earlier row exactly "
                f"({share:.2%}, at most {rules.max_duplicate_rows:.2%} allowed){scope}",
            )
    for key in schema.columns_with_role("id"):
        if key not in quality.duplicate_keys:
            continue
        repeated = quality.duplicate_keys[key]
        allowed = rules.max_duplicate_ids if rules.max_duplicate_ids is not None else 0.0
        if repeated / rows > allowed + 1e-12:
            add(
                key,
                "duplicate_ids",
                "unique ids" if not allowed else f"<= {allowed:.2%}",
                f"{repeated} repeated id(s)",
                f"{repeated} id value(s) repeat an earlier one; ids must be unique{scope}",
            )
    if (complete_rows and rules.min_complete_rows is not None
            and quality.complete_rows is not None):
        share = quality.complete_rows / rows
        if share < rules.min_complete_rows - 1e-12:
            add(
                None,
                "incomplete_rows",
                f"at least {rules.min_complete_rows:.2%} complete",
                f"{share:.2%} complete",
                f"only {share:.2%} of rows have every value "
                f"({rows - quality.complete_rows} have a missing one), at least "
                f"{rules.min_complete_rows:.2%} required",
            )


def _check_timeliness(stats: DatasetStatistics, schema: Schema, arrived_at: datetime | None,
                      add: _Add) -> None:
    """A stale batch (its newest event too old) and late rows (5% older than ``max_lag``)."""
    rules = schema.quality
    if rules.max_staleness is None and rules.max_lag is None:
        return
    event = rules.event_time or next(iter(schema.columns_with_role("event_time")), None)
    col = stats.columns.get(event) if event else None
    if col is None or col.numeric is None or col.numeric.max is None:
        return
    arrived = arrived_at or _parse_time(stats.created_at) or utc_now()
    arrived_s = (arrived if arrived.tzinfo else arrived.replace(tzinfo=UTC)).timestamp()
    newest = col.numeric.max
    if rules.max_staleness is not None and arrived_s - newest > rules.max_staleness:
        age = arrived_s - newest
        add(
            event,
            "stale_batch",
            f"newest event within {_span(rules.max_staleness)}",
            f"newest event {_span(age)} old",
            f"the batch is stale: its newest {event} is {_span(age)} before it arrived "
            f"(at most {_span(rules.max_staleness)} allowed)",
        )
    if rules.max_lag is not None:
        p05 = col.numeric.quantiles([0.05])
        if p05:
            lag = arrived_s - p05[0]
            if lag > rules.max_lag:
                add(
                    event,
                    "late_data",
                    f"95% of rows within {_span(rules.max_lag)}",
                    f"p95 lag {_span(lag)}",
                    f"rows arrive late: 5% of them are more than {_span(lag)} old on arrival "
                    f"(at most {_span(rules.max_lag)} allowed)",
                )


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _integer_counts(col: ColumnStatistics, domain: list[str]) -> dict[str, int]:
    """Value counts of an integer column, for its declared domain.

    Exact while the column has few distinct values; past that only its extremes are
    known, and an extreme outside the domain is reported (with an unknown count).
    """
    num = col.numeric
    assert num is not None
    if num.int_counts is not None:
        return {str(v): c for v, c in num.int_counts.items()}
    extremes = {str(int(v)) for v in (num.min, num.max) if v is not None}
    return {v: 0 for v in extremes if v not in set(domain)}


def _check_range(col: ColumnStatistics, spec: ColumnSchema, add: _Add) -> None:
    num = col.numeric
    assert num is not None
    if num.min is None or num.max is None:
        return
    problems = []
    if spec.min is not None and num.min < spec.min:
        # Negative values are counted exactly; other bounds only have the extreme to show.
        count = f" ({num.negative} negative value(s))" if spec.min == 0 else ""
        problems.append(f"min {num.min:g} < {spec.min:g}{count}")
    if spec.max is not None and num.max > spec.max:
        problems.append(f"max {num.max:g} > {spec.max:g}")
    if problems:
        lo = "-inf" if spec.min is None else f"{spec.min:g}"
        hi = "inf" if spec.max is None else f"{spec.max:g}"
        add(
            col.name,
            "out_of_range",
            f"values in [{lo}, {hi}]",
            "; ".join(problems),
            "values out of range: " + "; ".join(problems),
        )
