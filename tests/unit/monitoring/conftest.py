"""Shared fixtures: real flights turned into prediction records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

import numpy as np
import pytest

from ctloop.examples.flights.data import flights, load_table
from ctloop.requestlog.records import PredictionRecord

FEATURES = ["temp", "dewp", "humid", "wind_speed", "distance", "hour", "origin", "carrier"]
WEATHER = ["temp", "dewp", "humid", "wind_speed"]


def served(months: list[int]):
    """Flights of ``months`` with the weather at their origin and hour, as the model sees them."""
    weather = load_table("weather")[["origin", "time_hour", *WEATHER]]
    frame = flights(months)
    return frame.merge(weather, on=["origin", "time_hour"], how="left").set_index(frame.index)


def records_for(frame, *, model: str = "delays", version: int = 1,
                prefix: str = "") -> list[PredictionRecord]:
    """One record per flight: features as served, ts = scheduled hour, a fake score."""
    feats = frame[FEATURES].astype(object).where(frame[FEATURES].notna(), None)
    rows = feats.to_dict("records")
    ts = frame["time_hour"].dt.tz_localize(UTC).dt.to_pydatetime()
    score = np.clip(frame["dep_delay"].fillna(0).to_numpy() / 60.0, 0, 1)
    ids = [f"{prefix}{i}" for i in frame.index]
    return [
        PredictionRecord(request_id=rid, model_name=model, model_version=version,
                         route="champion", ts=t, prediction=float(p), features=f,
                         entity={"flight": int(fl)}, latency_ms=2.0)
        for rid, t, p, f, fl in zip(ids, ts, score, rows, frame["flight"], strict=True)
    ]


@pytest.fixture(scope="session")
def january():
    return served([1])


@pytest.fixture(scope="session")
def july():
    return served([7])


@pytest.fixture
def make_records() -> Callable[..., list[PredictionRecord]]:
    return records_for
