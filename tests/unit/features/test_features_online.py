"""Materialization and online retrieval (SQLite online store in a temp folder)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

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
)


@pytest.fixture
def store(tmp_path: Path):
    src = pd.DataFrame(
        {
            "origin": ["JFK", "JFK", "LGA", "EWR", "JFK"],
            "ts": pd.to_datetime(
                [
                    "2024-01-01 00:00",
                    "2024-01-01 01:00",
                    "2024-01-01 00:00",
                    "2024-01-01 05:00",
                    "2024-01-02 00:00",
                ]
            ),
            "temp": [1.5, 2.5, 3.5, 4.5, 9.5],
            "wind": [10, 11, None, 13, 14],
            "station": ["a", "b", "c", "d", "e"],
        }
    )
    origin = Entity("origin")
    weather = FeatureView(
        "weather",
        origin,
        DataFrameSource(src),
        [Feature("temp"), Feature("wind"), Feature("station", "string")],
        timestamp_field="ts",
        ttl="3h",
    )
    counts = AggregationView(
        "obs",
        origin,
        DataFrameSource(src),
        [Aggregation("n_24h", "temp", "count", "24h")],
        timestamp_field="ts",
    )
    fs = FeatureStore([weather, counts], online_store=f"sqlite:///{tmp_path / 'online.db'}")
    yield fs
    fs.close()


def test_materialize_then_read_with_event_times(store):
    report = store.materialize(end="2024-01-01 02:00")
    assert report.views == {"weather": 2, "obs": 2}
    got = store.get_online_features(
        ["weather:temp", "weather:station", "obs:n_24h"],
        [{"origin": "JFK"}, {"origin": "LGA"}, {"origin": "EWR"}],
        now="2024-01-01 02:00",
    )
    assert got.values["weather:temp"] == [2.5, 3.5, None]
    assert got.values["weather:station"] == ["b", "c", None]
    assert got.values["obs:n_24h"] == [2, 1, 0]  # nothing in the window: 0, as offline
    assert got.event_timestamps["weather:temp"][0] == datetime(2024, 1, 1, 1)
    assert got.statuses["weather:temp"] == ["present", "present", "missing"]
    # later, the values are past the ttl: null, but the event time shows how stale
    late = store.get_online_features(["weather:temp"], {"origin": ["LGA"]}, now="2024-01-01 04:00")
    assert late.values["weather:temp"] == [None]
    assert late.statuses["weather:temp"] == ["expired"]
    assert late.event_timestamps["weather:temp"] == [datetime(2024, 1, 1)]


def test_incremental_materialization_moves_the_watermark(store):
    store.materialize(end="2024-01-01 02:00")
    report = store.materialize(end="2024-01-02 00:00", incremental=True)
    assert report.views["weather"] == 2  # EWR at 05:00 and JFK on the 2nd
    got = store.get_online_features(
        ["weather:temp", "weather:wind"],
        [{"origin": "JFK"}, {"origin": "EWR"}, {"origin": "LGA"}],
        now="2024-01-02 00:00",
    )
    assert got.values["weather:temp"] == [9.5, None, None]  # EWR and LGA older than 3h
    assert got.statuses["weather:temp"] == ["present", "expired", "expired"]
    assert store.online.watermark("weather") == int(pd.Timestamp("2024-01-02").value // 1000)


def test_online_bad_input(store):
    store.materialize(end="2024-01-02")
    with pytest.raises(NotFound, match="weather:temp"):
        store.get_online_features(["weather:tmp"], [{"origin": "JFK"}])
    with pytest.raises(UserInputError, match=r"lack join key\(s\) \['origin'\]"):
        store.get_online_features(["weather:temp"], [{"airport": "JFK"}])
    with pytest.raises(UserInputError, match="start"):
        store.materialize(start="2024-02-01", end="2024-01-01")
    with pytest.raises(NotFound, match="weather"):
        store.materialize(views=["wether"])
