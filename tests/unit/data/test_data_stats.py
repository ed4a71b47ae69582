"""Statistics against a naive pandas/NumPy oracle, streaming and merging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctloop.data.stats import (
    CategoricalStats,
    ColumnStatistics,
    DatasetStatistics,
    NumericStats,
    compute_statistics,
    merge_statistics,
)


def _num(column: ColumnStatistics) -> NumericStats:
    assert column.numeric is not None, column.name
    return column.numeric


def _cat(column: ColumnStatistics) -> CategoricalStats:
    assert column.categorical is not None, column.name
    return column.categorical

# KLL k=200: ~1.3% normalised rank error at 99% confidence per query; compaction is
# randomised, so the oracle allows a bit over twice that to stay deterministic in CI.
RANK_TOLERANCE = 0.03


def frame(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 3, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(-5, 50, n),
            "c": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "flag": rng.random(n) < 0.3,
        }
    )


def assert_numeric_matches(stats, values: pd.Series) -> None:
    col = stats.columns[values.name]
    clean = values.dropna().to_numpy(dtype=float)
    assert col.count == len(values)
    assert col.missing == values.isna().sum()
    num = _num(col)
    assert num.finite == len(clean)
    assert num.min == clean.min() and num.max == clean.max()
    assert num.mean == pytest.approx(clean.mean(), rel=1e-9)
    assert num.std == pytest.approx(clean.std(ddof=1), rel=1e-9)
    assert num.zeros == np.count_nonzero(clean == 0)
    assert num.negative == np.count_nonzero(clean < 0)
    ranks = [0.01, 0.25, 0.5, 0.75, 0.99]
    for rank, q in zip(ranks, num.quantiles(ranks), strict=True):
        assert abs(np.mean(clean <= q) - rank) < RANK_TOLERANCE


def test_statistics_match_pandas():
    df = frame()
    stats = compute_statistics(df)
    assert stats.rows == len(df)
    assert_numeric_matches(stats, df["x"])
    assert_numeric_matches(stats, df["k"])
    cat = _cat(stats["c"])
    assert cat.distinct == 4
    assert cat.frequencies() == df["c"].value_counts().to_dict()
    assert stats["flag"].type == "boolean"
    assert _cat(stats["flag"]).frequencies()["true"] == df["flag"].sum()


def test_histogram_counts_add_up_and_follow_the_data():
    df = frame()
    hist = _num(compute_statistics(df)["x"]).histogram(bins=10)
    clean = df["x"].dropna()
    expected, _ = np.histogram(clean, bins=hist["edges"])
    assert sum(hist["counts"]) == pytest.approx(len(clean))
    assert np.max(np.abs(np.array(hist["counts"]) - expected)) < RANK_TOLERANCE * 2 * len(clean)


def test_merge_of_parts_equals_statistics_of_the_union():
    df = frame(30_000)
    parts = [compute_statistics(df.iloc[i : i + 10_000]) for i in range(0, 30_000, 10_000)]
    merged = merge_statistics(parts)
    whole = compute_statistics(df)
    assert merged.rows == whole.rows
    for name in ("x", "k"):
        a, b = merged[name], whole[name]
        assert (a.count, a.missing, _num(a).finite) == (b.count, b.missing, _num(b).finite)
        assert (_num(a).min, _num(a).max, _num(a).zeros) == (
            _num(b).min,
            _num(b).max,
            _num(b).zeros,
        )
        assert _num(a).mean == pytest.approx(_num(b).mean, rel=1e-12)
        assert _num(a).std == pytest.approx(_num(b).std, rel=1e-9)
    assert _cat(merged["c"]).frequencies() == _cat(whole["c"]).frequencies()
    assert_numeric_matches(merged, df["x"])


def test_merge_of_a_part_without_a_column_counts_it_missing():
    a = compute_statistics(pd.DataFrame({"x": [1.0, 2.0]}))
    b = compute_statistics(pd.DataFrame({"x": [3.0], "y": ["u"]}))
    merged = a.merged(b)
    assert merged["y"].count == 3 and merged["y"].missing == 2
    assert _cat(merged["y"]).frequencies() == {"u": 1}


def test_parquet_streams_over_row_groups(tmp_path):
    df = frame(12_000)
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=1000)
    stats = compute_statistics(path)
    assert stats.rows == len(df)
    assert_numeric_matches(stats, df["x"])
    assert _cat(stats["c"]).frequencies() == df["c"].value_counts().to_dict()


def test_csv_with_na_markers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1.5,x\nNA,y\n3.5,\n")
    stats = compute_statistics(path)
    assert stats["a"].type == "float" and stats["a"].missing == 1
    assert _num(stats["a"]).mean == pytest.approx(2.5)
    assert stats["b"].missing == 1


def test_saved_statistics_load_and_merge(tmp_path):
    df = frame(5000)
    path = compute_statistics(df.iloc[:2500]).save(tmp_path / "s.json")
    loaded = DatasetStatistics.load(path)
    merged = loaded.merged(compute_statistics(df.iloc[2500:]))
    assert_numeric_matches(merged, df["x"])


def test_datetime_columns_get_range_in_epoch_seconds():
    times = pd.Series(pd.date_range("2013-01-01", periods=48, freq="h"), name="t")
    stats = compute_statistics(times.to_frame())
    assert stats["t"].type == "datetime"
    assert _num(stats["t"]).min == pd.Timestamp("2013-01-01").timestamp()
    assert _num(stats["t"]).max == pd.Timestamp("2013-01-02 23:00").timestamp()


def test_datetime_summary_shows_iso_times():
    times = pd.Series(pd.date_range("2013-01-01", periods=3, freq="D"), name="t")
    summary = compute_statistics(times.to_frame()).to_dict(sketches=False)["columns"][0]
    assert summary["numeric"]["min_time"] == "2013-01-01T00:00:00+00:00"
    assert summary["numeric"]["max_time"] == "2013-01-03T00:00:00+00:00"


def test_top_values_of_unique_ids_are_not_inflated():
    """Past the sketch's exact capacity, unique ids must not be shown as 'seen N times'."""
    import pandas as pd

    from ctloop.data.stats import compute_statistics

    frame = pd.DataFrame({"uid": [f"id{i}" for i in range(20_000)]})
    cat = _cat(compute_statistics(frame).columns["uid"])
    assert not cat.exact
    assert all(count == 1 for _, count in cat.top(5)), cat.top(5)
