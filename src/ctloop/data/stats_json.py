"""The statistics file's JSON, typed: what ``DatasetStatistics.to_dict`` writes and reads.

A saved file travels between packages (a partition's task answers one, the monitors and
the CLI read them back), so its shape is written down once, here. Keys marked
``NotRequired`` are absent from older files or from summaries saved without sketches.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from ctloop.data.quality import QualityStatsJson

__all__ = ["CategoricalStatsJson", "ColumnStatisticsJson", "DatasetStatisticsJson",
           "NumericStatsJson", "TopValue"]


class NumericStatsJson(TypedDict):
    """Counts, moments and the quantile sketch of a numeric column."""

    finite: int
    nan: int
    inf: int
    zeros: int
    negative: NotRequired[int]  # absent from files written before it was counted
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    m2: float
    int_counts: NotRequired[dict[str, int]]  # an integer column with few values
    quantiles_sketch: NotRequired[str]  # base64; absent from a summary
    kll: NotRequired[str]  # the DataSketches KLL of files saved before the own sketch
    # a summary (saved without sketches) only:
    quantiles: NotRequired[dict[str, float]]
    histogram: NotRequired[dict[str, list[float]]]
    min_time: NotRequired[str | None]
    max_time: NotRequired[str | None]


class TopValue(TypedDict):
    """One frequent value of a categorical column."""

    value: str
    count: int


class CategoricalStatsJson(TypedDict):
    """Distinct count, frequent values and (base64) sketches of a categorical column."""

    distinct: int
    top: list[TopValue]
    freq: NotRequired[str]
    hll: NotRequired[str]


class ColumnStatisticsJson(TypedDict):
    """One column's statistics."""

    name: str
    type: str
    arrow_type: str
    count: int
    missing: int
    missing_rate: float
    numeric: NotRequired[NumericStatsJson]
    categorical: NotRequired[CategoricalStatsJson]


class DatasetStatisticsJson(TypedDict):
    """A statistics file: ``format`` names it, ``columns`` in the data's order."""

    format: str
    version: int
    source: str
    created_at: str
    rows: int
    quality: QualityStatsJson | None
    columns: list[ColumnStatisticsJson]
