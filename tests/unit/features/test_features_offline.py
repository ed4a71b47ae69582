"""Point-in-time retrieval checked against a naive pandas oracle on generated data."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.core.errors import NotFound, UserInputError
from ctloop.features import (
    Aggregation,
    AggregationView,
    DataFrameSource,
    Entity,
    Feature,
    FeatureStore,
    FeatureView,
    FileSource,
)
from ctloop.features.errors import SourceSchemaError

T0 = pd.Timestamp("2024-01-01")


def make_source(seed: int = 0, n: int = 400) -> pd.DataFrame:
    """Rows for 12 keys on a coarse time grid, so ties on (key, time) are common."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "k": rng.integers(0, 12, n),
            "ts": T0 + pd.to_timedelta(rng.integers(0, 40, n) * 6, unit="h"),
            "x": rng.normal(size=n).round(3),
            "cnt": rng.integers(0, 5, n),
            "label": rng.integers(0, 2, n),
        }
    )
    df.loc[rng.random(n) < 0.15, "x"] = np.nan  # nulls in values
    df.loc[rng.random(n) < 0.1, "label"] = pd.NA
    df["label"] = df["label"].astype("Int64")
    return df


def make_entities(seed: int = 1, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "k": rng.integers(0, 14, n),  # keys 12 and 13 never appear in the source
            # from before the first source row to after the last (future rows excluded)
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(-24, 260, n) * 1, unit="h"),
            "other": rng.random(n),
        }
    )


def oracle_latest(src, ent, columns, ttl):
    out: dict[str, list[object]] = {c: [] for c in columns}
    src = src.reset_index(drop=True)
    for k, t in zip(ent["k"], ent["event_timestamp"], strict=True):
        rows = src[(src["k"] == k) & (src["ts"] <= t)]
        if ttl is not None:
            rows = rows[rows["ts"] > t - ttl]
        if rows.empty:
            for c in columns:
                out[c].append(np.nan)
            continue
        last = rows[rows["ts"] == rows["ts"].max()].iloc[-1]  # ties: last in source order
        for c in columns:
            out[c].append(last[c])
    return pd.DataFrame(out)


def oracle_window(src, ent, column, window):
    counts, sums, means = [], [], []
    for k, t in zip(ent["k"], ent["event_timestamp"], strict=True):
        rows = src[(src["k"] == k) & (src["ts"] <= t) & (src["ts"] > t - window)][column].dropna()
        counts.append(len(rows))
        sums.append(float(rows.sum()) if len(rows) else np.nan)
        means.append(float(rows.astype(float).mean()) if len(rows) else np.nan)
    return counts, sums, means


def _views(source):
    key = Entity("key", ("k",))
    latest = FeatureView(
        "latest",
        key,
        source,
        [Feature("x"), Feature("cnt", "int64")],
        timestamp_field="ts",
        ttl="9h",
    )
    no_ttl = FeatureView("no_ttl", key, source, [Feature("x")], timestamp_field="ts")
    rolling = AggregationView(
        "rolling",
        key,
        source,
        [
            Aggregation("label_n", "label", "count", "2d"),
            Aggregation("label_rate", "label", "mean", "2d"),
            Aggregation("x_sum", "x", "sum", "5d"),
        ],
        timestamp_field="ts",
    )
    return [latest, no_ttl, rolling]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_in_time_matches_oracle(seed):
    src = make_source(seed)
    ent = make_entities(seed + 10)
    store = FeatureStore(_views(DataFrameSource(src)), online_store="sqlite:///:memory:")
    got = store.get_training_set(ent, ["latest:x", "latest:cnt", "no_ttl:x", "rolling"]).to_pandas()
    assert len(got) == len(ent)
    pd.testing.assert_frame_equal(got[["k", "event_timestamp", "other"]], ent)

    want = oracle_latest(src, ent, ["x", "cnt"], timedelta(hours=9))
    np.testing.assert_array_equal(got["latest__x"].to_numpy(float), want["x"].to_numpy(float))
    np.testing.assert_array_equal(got["cnt"].to_numpy(float), want["cnt"].to_numpy(float))
    want_nt = oracle_latest(src, ent, ["x"], None)
    np.testing.assert_array_equal(got["no_ttl__x"].to_numpy(float), want_nt["x"].to_numpy(float))

    n, _, rate = oracle_window(src, ent, "label", timedelta(days=2))
    np.testing.assert_array_equal(got["label_n"].to_numpy(), np.array(n))
    np.testing.assert_allclose(got["label_rate"].to_numpy(float), rate, rtol=1e-12)
    _, xs, _ = oracle_window(src, ent, "x", timedelta(days=5))
    np.testing.assert_allclose(got["x_sum"].to_numpy(float), xs, rtol=1e-9, atol=1e-12)
    # the generated data really exercises the edge cases
    assert got["latest__x"].isna().sum() > got["no_ttl__x"].isna().sum()  # ttl bites
    assert (ent["k"] >= 12).any()
    assert src.duplicated(["k", "ts"]).any()  # ties
    assert (ent["event_timestamp"] < src["ts"].min()).any()  # nothing known yet


def test_parquet_folder_source_matches_dataframe(tmp_path: Path):
    src = make_source(5)
    folder = tmp_path / "src"
    folder.mkdir()
    half = len(src) // 2
    src.iloc[:half].to_parquet(folder / "part-0.parquet")
    src.iloc[half:].to_parquet(folder / "part-1.parquet")
    ent = make_entities(6)
    from_files = FeatureStore(_views(FileSource(str(folder))), online_store="sqlite:///:memory:")
    from_frame = FeatureStore(_views(DataFrameSource(src)), online_store="sqlite:///:memory:")
    refs = ["latest", "rolling:label_rate"]
    a = from_files.get_training_set(ent, refs).to_pandas()
    b = from_frame.get_training_set(ent, refs).to_pandas()
    pd.testing.assert_frame_equal(a, b)


def test_static_view_and_arrow_entities():
    import pyarrow as pa

    planes = pd.DataFrame({"tail": ["A", "B", "A"], "seats": [100, 200, 150]})
    view = FeatureView(
        "planes", Entity("plane", ("tail",)), DataFrameSource(planes), [Feature("seats", "int64")]
    )
    store = FeatureStore([view], online_store="sqlite:///:memory:")
    ent = pa.table(
        {"tail": ["A", "B", "C"], "event_timestamp": pd.to_datetime(["2024-01-01"] * 3).values}
    )
    got = store.get_training_set(ent, ["planes:seats"]).to_pandas()
    assert got["seats"].tolist()[:2] == [150, 200]  # last row per key wins
    assert pd.isna(got["seats"].iloc[2])


def test_tz_aware_entity_timestamps_are_utc():
    src = make_source(3)
    ent = make_entities(4)
    store = FeatureStore(_views(DataFrameSource(src)), online_store="sqlite:///:memory:")
    naive = store.get_training_set(ent, ["latest:x"]).to_pandas()
    aware = ent.assign(
        event_timestamp=ent["event_timestamp"].dt.tz_localize("UTC").dt.tz_convert("US/Eastern")
    )
    got = store.get_training_set(aware, ["latest:x"]).to_pandas()
    np.testing.assert_array_equal(got["x"].to_numpy(float), naive["x"].to_numpy(float))


# --- bad input -------------------------------------------------------------------------------


@pytest.fixture
def store():
    return FeatureStore(_views(DataFrameSource(make_source())), online_store="sqlite:///:memory:")


def test_unknown_feature_suggests_close_names(store):
    with pytest.raises(NotFound, match=r"latest:x"):
        store.get_training_set(make_entities(), ["latest:xx"])
    with pytest.raises(NotFound, match=r"rolling:label_rate"):
        store.get_training_set(make_entities(), ["rolling:label_rat"])
    with pytest.raises(NotFound, match=r"latest"):
        store.get_training_set(make_entities(), ["lates:x"])


def test_entity_frame_missing_join_key(store):
    with pytest.raises(UserInputError, match=r"lacks column\(s\) \['k'\]"):
        store.get_training_set(make_entities().drop(columns=["k"]), ["latest:x"])


def test_entity_frame_missing_timestamp(store):
    ent = make_entities().rename(columns={"event_timestamp": "when"})
    with pytest.raises(UserInputError, match="event_timestamp"):
        store.get_training_set(ent, ["latest:x"])
    # naming the column fixes it
    assert len(store.get_training_set(ent, ["latest:x"], timestamp_column="when")) == len(ent)


def test_entity_timestamp_not_a_timestamp(store):
    ent = make_entities().assign(event_timestamp="2024-01-01")
    with pytest.raises(UserInputError, match="must hold timestamps"):
        store.get_training_set(ent, ["latest:x"])


def test_join_key_type_mismatch(store):
    ent = make_entities().assign(k=lambda d: d["k"].astype(str))
    with pytest.raises(UserInputError, match="Join key 'k'"):
        store.get_training_set(ent, ["latest:x"])


def test_source_schema_drift_is_reported(tmp_path: Path):
    path = tmp_path / "src.parquet"
    make_source().to_parquet(path)
    store = FeatureStore(_views(FileSource(str(path))), online_store="sqlite:///:memory:")
    assert len(store.get_training_set(make_entities(), ["latest:x"])) == 300
    # the column is renamed and another changes type
    make_source().rename(columns={"x": "x2"}).assign(cnt=lambda d: d["cnt"].astype(str)).to_parquet(
        path
    )
    with pytest.raises(SourceSchemaError, match=r"'x' is missing.*'cnt' has type VARCHAR"):
        store.get_training_set(make_entities(), ["latest:x"])


def test_missing_parquet_source(tmp_path: Path):
    store = FeatureStore(
        _views(FileSource(str(tmp_path / "nope.parquet"))), online_store="sqlite:///:memory:"
    )
    with pytest.raises(UserInputError, match="matches no file"):
        store.get_training_set(make_entities(), ["latest:x"])


def test_sql_source_matches_dataframe(tmp_path: Path):
    import sqlite3

    from ctloop.features import SqlSource

    src = make_source(7)
    with sqlite3.connect(tmp_path / "src.db") as con:  # SQLite keeps timestamps as text
        src.assign(ts=src["ts"].astype(str)).to_sql("events", con, index=False)
    query = "SELECT k, ts, x, cnt, label FROM events"
    from_sql = FeatureStore(
        _views(SqlSource(f"sqlite:///{tmp_path / 'src.db'}", query)),
        online_store="sqlite:///:memory:",
    )
    frame = FeatureStore(_views(DataFrameSource(src)), online_store="sqlite:///:memory:")
    ent = make_entities(8)
    refs = ["latest:x", "rolling:label_rate"]
    a = from_sql.get_training_set(ent, refs).to_pandas()
    b = frame.get_training_set(ent, refs).to_pandas()
    pd.testing.assert_frame_equal(a, b)
