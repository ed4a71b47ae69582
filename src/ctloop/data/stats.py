"""Dataset statistics that stream over batches and merge.

One pass over the record batches fills, per column, exact counts and moments
(merged with Chan's parallel formulas) and sketches for what cannot be exact
in bounded memory: a deterministic quantile sketch (:mod:`ctloop.data.quantiles`,
so the same data always gives the same quantiles and drift verdicts) for
quantiles and histograms of numbers, and Apache DataSketches' frequent-items
sketch for category frequencies and HLL sketch for distinct counts. All of
them merge, so the statistics of a month are the merge of its days and a
cluster job can describe partitions independently. The frequent-items sketch
holds counts exactly while a column has at most ``FREQ_EXACT_ITEMS`` distinct
values, which covers the categorical columns drift tests care about. Integer
columns also keep exact value counts while they have few values (codes), so
a declared ``domain`` can be checked.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import datasketches as ds
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ctloop.core.arrays import Floats
from ctloop.core.errors import UserInputError
from ctloop.data.quality import QualityCounter, QualityStats
from ctloop.data.quantiles import QuantileSketch
from ctloop.data.sources import DataSource, describe_source, iter_batches, iter_column_batches
from ctloop.data.stats_json import (
    CategoricalStatsJson,
    ColumnStatisticsJson,
    DatasetStatisticsJson,
    NumericStatsJson,
)

__all__ = [
    "DEFAULT_QUANTILES",
    "FORMAT",
    "CategoricalStats",
    "ColumnStatistics",
    "DatasetStatistics",
    "NumericStats",
    "compute_statistics",
    "logical_type",
    "merge_statistics",
]

FORMAT = "ctloop.statistics"
QUANTILE_K = 1024  # ~0.15% normalised rank error at a million values (see tests)
FREQ_LG_MAP = 12  # map of 4096 slots: exact counts for up to 3072 distinct values
FREQ_EXACT_ITEMS = 3 * (1 << FREQ_LG_MAP) // 4
HLL_LG_K = 12  # ~1.6% relative error on distinct counts
INT_VALUES_CAP = 1000  # integer columns keep exact value counts up to this many distinct values
DEFAULT_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
NUMERIC_TYPES = ("integer", "float", "datetime")
CATEGORICAL_TYPES = ("string", "boolean")



def logical_type(arrow_type: pa.DataType) -> str:
    """The type family a schema speaks of: integer, float, string, ...."""
    if pa.types.is_dictionary(arrow_type):
        return logical_type(arrow_type.value_type)
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
    ):
        return "string"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "datetime"
    if pa.types.is_null(arrow_type):
        return "null"
    return "other"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _num(value: float | None) -> float | None:
    """JSON has no NaN; missing or undefined figures are None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class NumericStats:
    """Exact counts and moments of the finite values, plus a quantile sketch.

    NaN and infinities are counted apart and kept out of the moments and the
    sketch, so one ``inf`` does not turn the mean into ``inf``.
    """

    finite: int = 0
    nan: int = 0
    inf: int = 0
    zeros: int = 0
    negative: int = 0
    min: float | None = None
    max: float | None = None
    mean: float = 0.0
    m2: float = 0.0
    sketch: QuantileSketch = field(default_factory=lambda: QuantileSketch(QUANTILE_K))
    #: exact counts of an integer column's values while it has few distinct ones (codes),
    #: so a declared ``domain`` can be checked; None once it has more than INT_VALUES_CAP.
    int_counts: dict[int, int] | None = None

    def update(self, values: Floats, nulls: int) -> None:
        """Add a float64 array whose nulls arrive as NaN (``nulls`` of them)."""
        finite_mask = np.isfinite(values)
        n_finite = int(finite_mask.sum())
        n_nan = int(np.isnan(values).sum())
        self.nan += n_nan - nulls
        self.inf += len(values) - n_finite - n_nan
        if n_finite == 0:
            return
        finite = values if n_finite == len(values) else values[finite_mask]
        batch = NumericStats(
            finite=n_finite,
            zeros=int(np.count_nonzero(finite == 0)),
            negative=int(np.count_nonzero(finite < 0)),
            min=float(finite.min()),
            max=float(finite.max()),
            mean=float(finite.mean()),
        )
        batch.m2 = float(np.var(finite) * n_finite)
        self.sketch.update(finite)
        self._merge_moments(batch)

    def update_integers(self, array: pa.Array | pa.ChunkedArray) -> None:
        """Count the values of an integer column while they are few."""
        if self.int_counts is None:
            return
        counts = pc.value_counts(array.drop_null())
        if len(counts) + len(self.int_counts) > INT_VALUES_CAP and len(counts) > INT_VALUES_CAP:
            self.int_counts = None
            return
        for value, count in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        ):
            self.int_counts[value] = self.int_counts.get(value, 0) + count
        if len(self.int_counts) > INT_VALUES_CAP:
            self.int_counts = None

    def _merge_moments(self, other: NumericStats) -> None:
        if other.finite == 0:
            return
        if self.finite == 0:
            self.finite, self.zeros, self.negative = other.finite, other.zeros, other.negative
            self.min, self.max, self.mean, self.m2 = other.min, other.max, other.mean, other.m2
            return
        n = self.finite + other.finite
        delta = other.mean - self.mean
        self.mean += delta * other.finite / n
        self.m2 += other.m2 + delta * delta * self.finite * other.finite / n
        self.finite = n
        self.zeros += other.zeros
        self.negative += other.negative
        self.min = min(self.min, other.min)  # type: ignore[type-var]
        self.max = max(self.max, other.max)  # type: ignore[type-var]

    def merged(self, other: NumericStats) -> NumericStats:
        """A new summary of both inputs (exact moments, merged sketch)."""
        out = NumericStats(nan=self.nan + other.nan, inf=self.inf + other.inf)
        if self.int_counts is not None and other.int_counts is not None:
            merged = dict(self.int_counts)
            for value, count in other.int_counts.items():
                merged[value] = merged.get(value, 0) + count
            out.int_counts = merged if len(merged) <= INT_VALUES_CAP else None
        out._merge_moments(self)
        out._merge_moments(other)
        out.sketch.merge(self.sketch)
        out.sketch.merge(other.sketch)
        return out

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1), None below two values."""
        if self.finite < 2:
            return None
        return math.sqrt(max(self.m2, 0.0) / (self.finite - 1))

    def quantiles(
        self, ranks: Sequence[float] | Floats = DEFAULT_QUANTILES
    ) -> list[float]:
        """Approximate quantiles at normalised ranks; empty without values."""
        if self.sketch.is_empty():
            return []
        return [float(q) for q in self.sketch.get_quantiles(list(ranks))]

    def cdf(self, points: Sequence[float] | Floats) -> Floats:
        """Share of finite values <= each point (approximate)."""
        if self.sketch.is_empty():
            return np.zeros(len(points))
        unique = np.unique(np.asarray(points, dtype=float))
        values = self.sketch.get_cdf(unique)
        return values[np.searchsorted(unique, points)]

    def histogram(
        self, edges: Sequence[float] | None = None, bins: int = 20
    ) -> dict[str, list[float]]:
        """Counts per bin (approximate), on equal-width bins between min and max by default."""
        if self.sketch.is_empty() or self.min is None or self.max is None:
            return {"edges": [], "counts": []}
        if edges is None:
            if self.min == self.max:
                return {"edges": [self.min, self.max], "counts": [float(self.finite)]}
            edges = np.linspace(self.min, self.max, bins + 1).tolist()
        edges = list(edges)
        inner = np.unique(np.asarray(edges[1:-1], dtype=float)).tolist()
        pmf = self.sketch.get_pmf(inner) if inner else np.array([1.0])
        # The outer bins of get_pmf also hold values beyond the first/last edge.
        counts = pmf * self.finite
        return {"edges": [float(e) for e in edges], "counts": [float(c) for c in counts]}

    def to_dict(self, *, sketches: bool = True) -> NumericStatsJson:
        out: NumericStatsJson = {
            "finite": self.finite,
            "nan": self.nan,
            "inf": self.inf,
            "zeros": self.zeros,
            "negative": self.negative,
            "min": _num(self.min),
            "max": _num(self.max),
            "mean": _num(self.mean) if self.finite else None,
            "std": _num(self.std),
            "m2": self.m2,
        }
        if self.int_counts is not None:
            out["int_counts"] = {str(v): c for v, c in sorted(self.int_counts.items())}
        if sketches:
            out["quantiles_sketch"] = self.sketch.to_b64()
        return out

    @classmethod
    def from_dict(cls, data: NumericStatsJson) -> NumericStats:
        out = cls(
            finite=data["finite"],
            nan=data["nan"],
            inf=data["inf"],
            zeros=data["zeros"],
            negative=data.get("negative", 0),
            min=data["min"],
            max=data["max"],
            mean=data["mean"] or 0.0,
            m2=data["m2"],
        )
        if "int_counts" in data:
            out.int_counts = {int(v): int(c) for v, c in data["int_counts"].items()}
        if "quantiles_sketch" in data:
            out.sketch = QuantileSketch.from_b64(data["quantiles_sketch"])
        elif "kll" in data:  # statistics saved by ctloop before the deterministic sketch
            kll = ds.kll_doubles_sketch.deserialize(_unb64(data["kll"]))
            out.sketch = QuantileSketch.from_weighted(list(kll), QUANTILE_K)
        return out


@dataclass
class CategoricalStats:
    """Value frequencies (frequent-items sketch) and distinct count (HLL) of a column."""

    freq: ds.frequent_strings_sketch = field(
        default_factory=lambda: ds.frequent_strings_sketch(FREQ_LG_MAP)
    )
    hll: ds.hll_sketch = field(default_factory=lambda: ds.hll_sketch(HLL_LG_K))

    def update(self, values: Sequence[str], counts: Sequence[int]) -> None:
        """Add a batch already reduced to (distinct value, count) pairs."""
        freq_update, hll_update = self.freq.update, self.hll.update
        for value, count in zip(values, counts, strict=True):
            freq_update(value, count)
            hll_update(value)

    def merged(self, other: CategoricalStats) -> CategoricalStats:
        out = CategoricalStats()
        out.freq.merge(self.freq)
        out.freq.merge(other.freq)
        union = ds.hll_union(HLL_LG_K)
        union.update(self.hll)
        union.update(other.hll)
        out.hll = union.get_result()
        return out

    @property
    def exact(self) -> bool:
        """True while every frequency is exact (the sketch has not purged anything)."""
        items = self.freq.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES, 0)
        return all(lower == upper for _, _, lower, upper in items)

    @property
    def total(self) -> int:
        return int(self.freq.total_weight)

    @property
    def distinct(self) -> int:
        """Number of distinct values: exact while the frequency sketch is, else HLL."""
        if self.freq.num_active_items <= FREQ_EXACT_ITEMS and self.exact:
            return int(self.freq.num_active_items)
        return round(float(self.hll.get_estimate()))

    def frequencies(self) -> dict[str, int]:
        """Estimated count of every value the sketch retains, most frequent first."""
        items = self.freq.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES, 0)
        return {value: int(estimate) for value, estimate, _, _ in items}

    def top(self, k: int = 20) -> list[tuple[str, int]]:
        """The k most frequent values; once the sketch has purged, only values surely frequent.

        (After a purge every retained estimate carries the sketch's error, so a column of
        unique ids would otherwise show ids "seen 9 times".)
        """
        if self.exact:
            return list(self.frequencies().items())[:k]
        items = self.freq.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_POSITIVES)
        return [(value, int(estimate)) for value, estimate, _, _ in items[:k]]

    def to_dict(self, *, sketches: bool = True, top_k: int = 20) -> CategoricalStatsJson:
        out: CategoricalStatsJson = {
            "distinct": self.distinct,
            "top": [{"value": v, "count": c} for v, c in self.top(top_k)],
        }
        if sketches:
            out["freq"] = _b64(self.freq.serialize())
            out["hll"] = _b64(self.hll.serialize_compact())
        return out

    @classmethod
    def from_dict(cls, data: CategoricalStatsJson) -> CategoricalStats:
        out = cls()
        if "freq" in data:
            out.freq = ds.frequent_strings_sketch.deserialize(_unb64(data["freq"]))
            out.hll = ds.hll_sketch.deserialize(_unb64(data["hll"]))
        return out


@dataclass
class ColumnStatistics:
    """What one column holds: its type, how many values are missing, and their distribution."""

    name: str
    type: str
    arrow_type: str
    count: int = 0
    missing: int = 0
    numeric: NumericStats | None = None
    categorical: CategoricalStats | None = None

    @classmethod
    def empty(cls, name: str, arrow_type: pa.DataType) -> ColumnStatistics:
        kind = logical_type(arrow_type)
        return cls(
            name=name,
            type=kind,
            arrow_type=str(arrow_type),
            numeric=(
                NumericStats(int_counts={} if kind == "integer" else None)
                if kind in NUMERIC_TYPES
                else None
            ),
            categorical=CategoricalStats() if kind in CATEGORICAL_TYPES else None,
        )

    @property
    def missing_rate(self) -> float:
        return self.missing / self.count if self.count else 0.0

    def update(self, array: pa.Array | pa.ChunkedArray) -> None:
        """Add one batch of this column."""
        nulls = array.null_count
        self.count += len(array)
        self.missing += nulls
        if self.numeric is not None:
            values = _as_float64(array, self.type)
            before = self.numeric.nan
            self.numeric.update(values, nulls)
            if self.type == "integer":
                self.numeric.update_integers(array)
            self.missing += self.numeric.nan - before  # NaN counts as missing, like pandas
        elif self.categorical is not None and nulls < len(array):
            if pa.types.is_dictionary(array.type):
                array = array.dictionary_decode()
            if self.type == "boolean":
                array = pc.cast(array, pa.string())
            counts = pc.value_counts(array.drop_null())
            self.categorical.update(
                counts.field("values").to_pylist(), counts.field("counts").to_pylist()
            )

    def merged(self, other: ColumnStatistics) -> ColumnStatistics:
        kind = _merge_type(self, other)
        out = ColumnStatistics(
            name=self.name,
            type=kind,
            arrow_type=self.arrow_type if kind == self.type else other.arrow_type,
            count=self.count + other.count,
            missing=self.missing + other.missing,
        )
        if kind in NUMERIC_TYPES:
            blank = NumericStats(int_counts={} if kind == "integer" else None)
            out.numeric = (self.numeric or blank).merged(other.numeric or blank)
        if kind in CATEGORICAL_TYPES:
            out.categorical = (self.categorical or CategoricalStats()).merged(
                other.categorical or CategoricalStats()
            )
        return out

    def to_dict(self, *, sketches: bool = True, top_k: int = 20) -> ColumnStatisticsJson:
        out: ColumnStatisticsJson = {
            "name": self.name,
            "type": self.type,
            "arrow_type": self.arrow_type,
            "count": self.count,
            "missing": self.missing,
            "missing_rate": self.missing_rate,
        }
        if self.numeric is not None:
            out["numeric"] = self.numeric.to_dict(sketches=sketches)
            if not sketches:
                quantiles = self.numeric.quantiles()
                labels = [f"p{round(r * 100):02d}" for r in DEFAULT_QUANTILES]
                out["numeric"]["quantiles"] = (
                    dict(zip(labels, quantiles, strict=True)) if quantiles else {}
                )
                out["numeric"]["histogram"] = self.numeric.histogram()
                if self.type == "datetime" and self.numeric.min is not None:
                    out["numeric"]["min_time"] = _iso(self.numeric.min)
                    out["numeric"]["max_time"] = _iso(self.numeric.max)
        if self.categorical is not None:
            out["categorical"] = self.categorical.to_dict(sketches=sketches, top_k=top_k)
        return out

    @classmethod
    def from_dict(cls, data: ColumnStatisticsJson) -> ColumnStatistics:
        return cls(
            name=data["name"],
            type=data["type"],
            arrow_type=data["arrow_type"],
            count=data["count"],
            missing=data["missing"],
            numeric=NumericStats.from_dict(data["numeric"]) if "numeric" in data else None,
            categorical=(
                CategoricalStats.from_dict(data["categorical"]) if "categorical" in data else None
            ),
        )


def _iso(epoch_seconds: float | None) -> str | None:
    if epoch_seconds is None:
        return None
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat()


def _merge_type(a: ColumnStatistics, b: ColumnStatistics) -> str:
    if a.type == b.type:
        return a.type
    kinds = {a.type, b.type}
    if "null" in kinds:
        return (kinds - {"null"}).pop()
    if kinds == {"integer", "float"}:
        return "float"
    raise UserInputError(
        f"Column {a.name!r} is {a.type} in one part and {b.type} in the other; "
        "statistics of parts can only be merged when each column keeps one type."
    )


def _as_float64(array: pa.Array | pa.ChunkedArray, kind: str) -> Floats:
    """The column as float64 NumPy values, nulls as NaN; datetimes as epoch seconds."""
    if kind == "datetime":
        if pa.types.is_date(array.type):
            array = pc.cast(array, pa.timestamp("s"))
        array = pc.cast(
            pc.cast(array, pa.timestamp("us", tz=getattr(array.type, "tz", None))), pa.int64()
        )
        values = array.to_numpy(zero_copy_only=False).astype(np.float64)
        if array.null_count:
            values[np.asarray(array.is_null())] = np.nan
        seconds: Floats = values / 1e6
        return seconds
    if not pa.types.is_float64(array.type):
        array = pc.cast(array, pa.float64())
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


@dataclass
class DatasetStatistics:
    """Statistics of every column of a dataset; mergeable and serialisable to JSON."""

    columns: dict[str, ColumnStatistics]
    rows: int = 0
    source: str = ""
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    quality: QualityStats | None = None

    def __getitem__(self, name: str) -> ColumnStatistics:
        return self.columns[name]

    def merged(self, other: DatasetStatistics) -> DatasetStatistics:
        """Statistics of the union of both datasets (exact counts and moments)."""
        names = list(self.columns) + [n for n in other.columns if n not in self.columns]
        columns = {}
        for name in names:
            mine = self.columns.get(name) or _absent(other.columns[name], self.rows)
            theirs = other.columns.get(name) or _absent(mine, other.rows)
            columns[name] = mine.merged(theirs)
        sources = [s for s in (self.source, other.source) if s]
        quality = (
            self.quality.merged(other.quality)
            if self.quality is not None and other.quality is not None
            else None
        )
        return DatasetStatistics(
            columns=columns, rows=self.rows + other.rows, source=" + ".join(sources),
            quality=quality,
        )

    def to_dict(self, *, sketches: bool = True, top_k: int = 20) -> DatasetStatisticsJson:
        """JSON-able form; with ``sketches`` it can be loaded and merged again."""
        return {
            "format": FORMAT,
            "version": 2,
            "source": self.source,
            "created_at": self.created_at,
            "rows": self.rows,
            "quality": self.quality.to_dict() if self.quality is not None else None,
            "columns": [c.to_dict(sketches=sketches, top_k=top_k) for c in self.columns.values()],
        }

    @classmethod
    def from_dict(cls, data: DatasetStatisticsJson) -> DatasetStatistics:
        if data.get("format") != FORMAT:
            raise UserInputError(
                "This JSON document is not ctloop statistics (no "
                f"'format: {FORMAT}'); compute them with `ctloop data stats FILE -o stats.json`."
            )
        if not all(
            "kll" in c["numeric"] or "quantiles_sketch" in c["numeric"]
            for c in data["columns"]
            if "numeric" in c
        ):
            raise UserInputError(
                "These statistics were saved without sketches (a summary); "
                "save them with sketches to reuse them."
            )
        quality = data.get("quality")
        return cls(
            columns={c["name"]: ColumnStatistics.from_dict(c) for c in data["columns"]},
            rows=data["rows"],
            source=data.get("source", ""),
            created_at=data.get("created_at", ""),
            quality=QualityStats.from_dict(quality) if quality else None,
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> DatasetStatistics:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise UserInputError(f"Cannot read statistics from {path}: {exc}") from exc
        return cls.from_dict(data)


def _absent(like: ColumnStatistics, rows: int) -> ColumnStatistics:
    """Statistics of a column that a part does not have: all its rows are missing."""
    out = ColumnStatistics(name=like.name, type="null", arrow_type="null", count=rows, missing=rows)
    return out


def compute_statistics(
    source: DataSource,
    *,
    name: str | None = None,
    duplicates: bool = False,
    keys: Sequence[str] = (),
) -> DatasetStatistics:
    """Statistics of a parquet/CSV file, folder of parquet files, DataFrame or Arrow table.

    Streams over record batches, so memory stays bounded by one batch plus
    the sketches, whatever the size of the file (parquet is read a column at a
    time, see :func:`ctloop.data.sources.iter_column_batches`).

    Complete rows are always counted. With ``duplicates``, duplicate rows are
    counted too, and with ``keys`` repeated values of those (id) columns; both
    keep 8 bytes per row and read the data row-wise, which costs a second pass
    for parquet (see :mod:`ctloop.data.quality`).
    """
    schema, batches = iter_column_batches(source)
    columns = {f.name: ColumnStatistics.empty(f.name, f.type) for f in schema}
    if len(columns) != len(schema):
        raise UserInputError(f"{describe_source(source)} has duplicate column names.")
    unknown = [k for k in keys if k not in columns]
    if unknown:
        raise UserInputError(f"Key columns {unknown} are not in {describe_source(source)}.")
    counter = QualityCounter(duplicates=duplicates, keys=keys)
    rows = 0
    row_wise = True
    for first, batch in batches:
        if first == 0:  # parquet arrives a column at a time: count rows once
            rows += batch.num_rows
        if batch.num_columns == len(columns):
            counter.update(batch)
        else:
            row_wise = False
        for name_, column in zip(batch.schema.names, batch.columns, strict=True):
            columns[name_].update(column)
    if not row_wise:
        counter = QualityCounter(duplicates=duplicates, keys=keys)
        if duplicates or keys:  # they need whole rows: one row-wise pass more
            _, whole = iter_batches(source)
            for batch in whole:
                counter.update(batch)
        else:
            counter.stats.complete_rows = None  # not counted column-wise
            counter.stats.rows = rows
    return DatasetStatistics(
        columns=columns, rows=rows, source=name or describe_source(source),
        quality=counter.result(),
    )


def merge_statistics(parts: Iterable[DatasetStatistics]) -> DatasetStatistics:
    """Statistics of the union of the parts (e.g. a month from its days)."""
    parts = list(parts)
    if not parts:
        raise UserInputError("Nothing to merge: give at least one statistics object.")
    out = parts[0]
    for part in parts[1:]:
        out = out.merged(part)
    return out
