"""Edge cases: each gives a clear result or a clear error, never a traceback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctloop.core.errors import NotFound, UserInputError
from ctloop.data import compute_drift, compute_statistics, infer_schema, validate
from ctloop.data.stats import DatasetStatistics


def test_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(UserInputError, match="empty"):
        compute_statistics(path)


def test_header_only_csv_has_zero_rows_and_fails_validation(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("a,b\n")
    stats = compute_statistics(path)
    assert stats.rows == 0 and list(stats.columns) == ["a", "b"]
    with pytest.raises(UserInputError, match="no rows"):
        infer_schema(stats)
    schema = infer_schema(compute_statistics(pd.DataFrame({"a": ["x"], "b": ["y"]})))
    result = validate(stats, schema)
    assert "empty_dataset" in result.kinds() and not result.ok


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(NotFound, match="No file"):
        compute_statistics(tmp_path / "nope.parquet")
    odd = tmp_path / "data.xlsx"
    odd.write_bytes(b"PK")
    with pytest.raises(UserInputError, match=r"\.parquet or \.csv"):
        compute_statistics(odd)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(UserInputError, match="not a readable parquet"):
        compute_statistics(broken)


def test_all_null_column():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "gone": [None, None, None]})
    stats = compute_statistics(df)
    assert stats["gone"].type == "null" and stats["gone"].missing_rate == 1.0
    schema = infer_schema(stats)
    assert schema.columns["gone"].max_missing == 1.0
    assert validate(df, schema).ok
    # A column that used to have values and is now all null: too many missing, not a type change.
    later = df.assign(x=np.array([None, None, None], dtype=object))
    assert validate(later, schema).kinds("x") == {"missing_values"}
    assert compute_drift(df, later)["x"].note == "type changed from float to null; not comparable"


def test_single_row_batch():
    train = pd.DataFrame({"x": np.arange(100.0), "c": ["a", "b"] * 50})
    one = train.iloc[[3]]
    stats = compute_statistics(one)
    num = stats["x"].numeric
    assert stats.rows == 1 and num is not None and num.std is None
    assert validate(one, infer_schema(compute_statistics(train))).ok
    report = compute_drift(train, one)
    assert {f.method for f in report.features} == {"ks", "chisquare"}
    assert infer_schema(stats).columns["x"].min == 0


def test_nan_and_infinity_in_numeric_columns():
    x = np.array([1.0, np.nan, np.inf, -np.inf, 2.0, 0.0])
    stats = compute_statistics(pd.DataFrame({"x": x}))
    num = stats["x"].numeric
    assert num is not None
    assert (num.finite, num.inf, num.zeros) == (3, 2, 1)
    assert stats["x"].missing == 1  # NaN counts as missing
    assert (num.min, num.max, num.mean) == (0.0, 2.0, 1.0)
    # Arrow input keeps NaN apart from null.
    import pyarrow as pa

    table = pa.table({"x": pa.array([1.0, float("nan"), None, float("inf")])})
    s = compute_statistics(table)["x"]
    assert s.numeric is not None
    assert (s.missing, s.numeric.nan, s.numeric.inf, s.numeric.finite) == (2, 1, 1, 1)
    schema = infer_schema(compute_statistics(pd.DataFrame({"x": [1.0, 2.0]})))
    assert "non_finite" in validate(pd.DataFrame({"x": x}), schema).kinds()


def test_very_high_cardinality_strings():
    n = 60_000
    df = pd.DataFrame({"id": [f"user-{i}" for i in range(n)]})
    stats = compute_statistics(df)
    cat = stats["id"].categorical
    assert cat is not None and not cat.exact
    assert cat.distinct == pytest.approx(n, rel=0.05)
    assert infer_schema(stats).columns["id"].domain is None
    report = compute_drift(df, df.assign(id=[f"other-{i}" for i in range(n)]))
    assert report["id"].score is not None


def test_merging_columns_of_different_types_is_refused():
    a = compute_statistics(pd.DataFrame({"x": [1.0]}))
    b = compute_statistics(pd.DataFrame({"x": ["one"]}))
    with pytest.raises(UserInputError, match="keeps one type"):
        a.merged(b)


def test_loading_something_that_is_not_statistics(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(UserInputError, match="not ctloop statistics"):
        DatasetStatistics.load(path)
