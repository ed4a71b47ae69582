"""The drift monitor with thresholds from the reference's own motion, on real flights:
months of weather the training data already spans are not drift; a season it never
saw is (issue 23.5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import as_str
from ctloop.data.stats import compute_statistics
from ctloop.examples.flights.data import flights, load_table
from ctloop.monitoring.monitors import check_drift
from ctloop.requestlog.log import open_prediction_log

WEATHER = ["temp", "dewp", "humid", "wind_speed"]


def served(months: list[int]):
    """Flights with the weather at their origin and hour (as the conftest's ``served``)."""
    weather = load_table("weather")[["origin", "time_hour", *WEATHER]]
    frame = flights(months)
    return frame.merge(weather, on=["origin", "time_hour"], how="left").set_index(frame.index)


@pytest.fixture(scope="module")
def spring_to_summer():
    """March to August in time order: the training data of a September champion."""
    return served([3, 4, 5, 6, 7, 8]).sort_values("time_hour")[WEATHER].iloc[::4]


@pytest.fixture
def september_log(tmp_path: Path, make_records):
    log = open_prediction_log(tmp_path / "september")
    log.append(make_records(served([9]).iloc[::3]))
    return log


@pytest.fixture
def july_log(tmp_path: Path, july, make_records):
    log = open_prediction_log(tmp_path / "july")
    log.append(make_records(july.iloc[::3]))
    return log


def test_a_month_inside_the_seasons_seen_is_not_drift(september_log, spring_to_summer) -> None:
    fixed = check_drift(september_log, "delays", spring_to_summer, columns=WEATHER)
    assert fixed.fired and fixed.value == 1.0  # every weather feature, every month
    calm = check_drift(september_log, "delays", spring_to_summer, columns=WEATHER,
                       thresholds="stationary")
    assert not calm.fired and calm.value is not None and calm.value < 0.5, calm.details
    assert calm.details["thresholds"] == "stationary" and fixed.details["thresholds"] == "fixed"


def test_a_season_the_reference_never_saw_still_drifts(july_log, january) -> None:
    winter = january.sort_values("time_hour")[WEATHER]
    result = check_drift(july_log, "delays", winter, columns=WEATHER, thresholds="stationary")
    assert result.fired and {"temp", "dewp"} <= set(result.strings("drifted_features"))


def test_statistics_alone_keep_fixed_thresholds_and_say_so(july_log, january) -> None:
    stats = compute_statistics(january[WEATHER])
    result = check_drift(july_log, "delays", stats, thresholds="stationary")
    assert result.fired and result.details["thresholds"] == "fixed"
    assert "cannot be measured" in as_str(result.details["thresholds_note"])
    with pytest.raises(UserInputError, match=r"'fixed' or 'stationary'\. Got 'seasonal'"):
        check_drift(july_log, "delays", stats, thresholds="seasonal")

