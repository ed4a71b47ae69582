"""Offline and online values agree for every feature of the flights scenario.

For the same entity and moment, the training-set value (point-in-time join)
and the online value after materializing up to that moment must be identical.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from ctloop.examples.flights.features import FEATURES, flight_entities, flights_feature_store
from ctloop.features import FeatureStore
from ctloop.testing.services import REDIS_URL, require_service, unique_name

MOMENTS = [pd.Timestamp("2013-03-15 13:37"), pd.Timestamp("2013-07-04 08:00")]


@pytest.fixture(scope="module")
def entities() -> pd.DataFrame:
    flights = flight_entities([3, 7])
    return flights.sample(400, random_state=0)[["origin", "dest", "carrier", "tailnum"]]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeatureStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'online.db'}"
    else:
        require_service("redis")
        url = f"{REDIS_URL}?prefix={unique_name('ctcons')}"
    fs = flights_feature_store(online_store=url)
    yield fs
    for view in fs.views:
        fs.online.drop_view(view)
    fs.close()


def _same(a: object, b: object) -> bool:
    missing_a = a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NA
    missing_b = b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA
    if missing_a or missing_b:
        return missing_a and missing_b
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return float(a) == float(b)  # type: ignore[arg-type]  # exact, not approximate


@pytest.mark.slow
def test_offline_equals_online_for_every_flights_feature(store, entities):
    for moment in MOMENTS:
        offline = store.get_training_set(
            entities.assign(event_timestamp=moment), FEATURES, full_names=True
        ).to_pandas()
        store.materialize(end=moment)
        rows = entities.astype(object).where(entities.notna(), None).to_dict("records")
        online = store.get_online_features(FEATURES, rows, now=moment)
        checked = 0
        for ref in FEATURES:
            column = ref.replace(":", "__")
            want = offline[column].astype(object).tolist()
            got = online.values[ref]
            bad = [
                (i, w, g) for i, (w, g) in enumerate(zip(want, got, strict=True)) if not _same(w, g)
            ]
            assert not bad, f"{ref} at {moment}: offline vs online differ at {bad[:5]}"
            checked += sum(g is not None for g in got)
        assert checked > 0.7 * len(entities) * len(FEATURES)  # mostly real values, not nulls
