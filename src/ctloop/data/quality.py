"""Data quality beyond the schema: duplicates, complete rows and timeliness.

Counted in the same streaming pass as the statistics (:class:`QualityCounter`)
and checked against thresholds in the schema's ``quality:`` section
(:class:`QualityRules`), each failure a clear anomaly:

- ``duplicate_rows``: rows identical in every column (64-bit row hashes, so
  memory is 8 bytes per row, not the rows themselves);
- ``duplicate_ids``: repeated values of the id columns (schema ``role: id``);
- ``incomplete_rows``: rows with a missing value in any column (per-column
  completeness is each column's ``max_missing``);
- ``stale_batch``: the newest event time is older than ``max_staleness`` when
  the batch arrives (a feed that stopped, a file delivered twice);
- ``late_data``: the 95th percentile of arrival minus event time exceeds
  ``max_lag`` (rows arriving late).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias, TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ctloop.core.durations import duration_seconds, duration_text
from ctloop.core.errors import UserInputError

__all__ = ["QualityCounter", "QualityRules", "QualityStats", "QualityStatsJson", "parse_duration"]

_Hashes: TypeAlias = npt.NDArray[np.uint64]



def parse_duration(text: object, where: str) -> float:
    """Seconds in ``90s``, ``15m``, ``6h``, ``2d``, ``1w`` (or a number of seconds)."""
    if isinstance(text, int | float) and not isinstance(text, bool) and text >= 0:
        return float(text)
    seconds = duration_seconds(text)
    if seconds is None:
        raise UserInputError(
            f"{where} must be a duration such as 90s, 15m, 6h, 2d or 1w. Got {text!r}."
        )
    return seconds


class QualityStatsJson(TypedDict):
    """:class:`QualityStats` as JSON (inside the statistics file)."""

    rows: int
    complete_rows: int | None
    duplicate_rows: int | None
    duplicate_keys: dict[str, int]
    exact: bool


@dataclass
class QualityStats:
    """Duplicate and completeness counts of a dataset (exact within one pass)."""

    rows: int = 0
    complete_rows: int | None = 0  # None: not counted (parquet read a column at a time)
    duplicate_rows: int | None = None  # None: not counted
    duplicate_keys: dict[str, int] = field(default_factory=dict)
    #: False once parts were merged: duplicates across parts are not seen
    exact: bool = True

    def merged(self, other: QualityStats) -> QualityStats:
        dup = (
            None
            if self.duplicate_rows is None or other.duplicate_rows is None
            else self.duplicate_rows + other.duplicate_rows
        )
        keys = {
            k: self.duplicate_keys[k] + other.duplicate_keys[k]
            for k in self.duplicate_keys
            if k in other.duplicate_keys
        }
        complete = (
            None
            if self.complete_rows is None or other.complete_rows is None
            else self.complete_rows + other.complete_rows
        )
        return QualityStats(
            rows=self.rows + other.rows,
            complete_rows=complete,
            duplicate_rows=dup,
            duplicate_keys=keys,
            exact=False,
        )

    def to_dict(self) -> QualityStatsJson:
        return {
            "rows": self.rows,
            "complete_rows": self.complete_rows,
            "duplicate_rows": self.duplicate_rows,
            "duplicate_keys": dict(self.duplicate_keys),
            "exact": self.exact,
        }

    @classmethod
    def from_dict(cls, data: QualityStatsJson) -> QualityStats:
        return cls(
            rows=int(data.get("rows", 0)),
            complete_rows=data.get("complete_rows"),
            duplicate_rows=data.get("duplicate_rows"),
            duplicate_keys={k: int(v) for k, v in (data.get("duplicate_keys") or {}).items()},
            exact=bool(data.get("exact", True)),
        )


class QualityCounter:
    """Fills :class:`QualityStats` batch by batch."""

    def __init__(self, *, duplicates: bool, keys: Sequence[str] = ()) -> None:
        self.duplicates = duplicates
        self.keys = list(keys)
        self.stats = QualityStats(duplicate_rows=0 if duplicates else None)
        self._row_hashes: list[_Hashes] = []
        self._key_hashes: dict[str, list[_Hashes]] = {k: [] for k in self.keys}

    def update(self, batch: pa.RecordBatch) -> None:
        self.stats.rows += batch.num_rows
        if batch.num_columns and self.stats.complete_rows is not None:
            incomplete = None
            for column in batch.columns:
                if column.null_count or pa.types.is_floating(column.type):
                    nulls = pc.is_null(column, nan_is_null=True)
                    incomplete = nulls if incomplete is None else pc.or_(incomplete, nulls)
            bad = int(pc.sum(incomplete).as_py() or 0) if incomplete is not None else 0
            self.stats.complete_rows += batch.num_rows - bad
        if not (self.duplicates or self.keys):
            return
        frame = batch.to_pandas()
        if self.duplicates:
            self._row_hashes.append(
                np.asarray(pd.util.hash_pandas_object(frame, index=False), dtype=np.uint64))
        for key in self.keys:
            if key in frame.columns:
                values = frame[key].dropna()
                self._key_hashes[key].append(
                    np.asarray(pd.util.hash_pandas_object(values, index=False), dtype=np.uint64)
                )

    def result(self) -> QualityStats:
        if self.duplicates:
            self.stats.duplicate_rows = _repeats(self._row_hashes)
        for key, parts in self._key_hashes.items():
            self.stats.duplicate_keys[key] = _repeats(parts)
        self._row_hashes, self._key_hashes = [], {}
        return self.stats


def _repeats(parts: list[_Hashes]) -> int:
    """How many values repeat an earlier one."""
    if not parts:
        return 0
    values = np.concatenate(parts)
    return int(len(values) - len(np.unique(values)))


@dataclass
class QualityRules:
    """The schema's ``quality:`` thresholds; None leaves a check off."""

    max_duplicate_rows: float | None = None  # share of rows
    max_duplicate_ids: float | None = None  # share of rows
    min_complete_rows: float | None = None  # share of rows with no missing value
    max_staleness: float | None = None  # seconds from the newest event to arrival
    max_lag: float | None = None  # seconds, 95th percentile of arrival - event time
    event_time: str | None = None  # the column; default: the schema's event_time column

    KEYS = (
        "max_duplicate_rows",
        "max_duplicate_ids",
        "min_complete_rows",
        "max_staleness",
        "max_lag",
        "event_time",
    )

    @classmethod
    def from_dict(cls, data: object, where: str) -> QualityRules:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise UserInputError(f"{where} must be a mapping of {list(cls.KEYS)}.")
        unknown = set(data) - set(cls.KEYS)
        if unknown:
            raise UserInputError(
                f"{where}: unknown keys {sorted(unknown)}; allowed: {list(cls.KEYS)}."
            )
        out = cls()
        for key in ("max_duplicate_rows", "max_duplicate_ids", "min_complete_rows"):
            value = data.get(key)
            if value is not None:
                if not isinstance(value, int | float) or not 0 <= value <= 1:
                    raise UserInputError(
                        f"{where}: {key} must be a share in [0, 1]. Got {value!r}."
                    )
                setattr(out, key, float(value))
        for key in ("max_staleness", "max_lag"):
            if data.get(key) is not None:
                setattr(out, key, parse_duration(data[key], f"{where}: {key}"))
        if data.get("event_time") is not None:
            out.event_time = str(data["event_time"])
        return out

    def to_dict(self) -> dict[str, float | str]:
        out: dict[str, float | str] = {}
        for key in self.KEYS:
            value = getattr(self, key)
            if value is None:
                continue
            out[key] = duration_text(value) if key in ("max_staleness", "max_lag") else value
        return out

