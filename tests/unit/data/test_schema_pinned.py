"""infer_schema_batches pinned on real batches (three months of flights, of weather) and on
a frame that takes every odd path (calendar, constant, infinite, ids, empty batch), so
splitting the function into steps keeps the schema it writes to the digit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctloop.data.schema import infer_schema_batches
from ctloop.data.stats import compute_statistics
from ctloop.examples.flights.data import flights, load_table

ANY_DAY = {"role": "calendar", "required": True, "max_missing": 0.0}
PLAIN = {"required": True, "max_missing": 0.0}


def test_three_months_of_flights() -> None:
    months = [compute_statistics(flights([m])) for m in (1, 2, 3)]
    schema = infer_schema_batches(months, label="delayed", ids=["flight"]).to_dict()
    carriers = ["9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US",
                "VX", "WN", "YV"]
    assert schema == {
        "version": 1,
        "inferred_from": "DataFrame[26398 rows] + DataFrame[23611 rows] + DataFrame[27902 rows]",
        "drift_share": 0.5,
        "quality": {"min_complete_rows": 0.99},
        "columns": {
            "year": {"type": "integer", **ANY_DAY, "min": 1900, "max": 2200},
            "month": {"type": "integer", **ANY_DAY, "min": 1, "max": 12},
            "day": {"type": "integer", **ANY_DAY, "min": 1, "max": 31},
            "dep_time": {"type": "float", **PLAIN, "min": 0.0, "max": 4799.0},
            "sched_dep_time": {"type": "integer", **PLAIN, "min": 0, "max": 4218},
            "dep_delay": {"type": "float", **PLAIN, "min": -1367.0, "max": 2635.0},
            "arr_time": {"type": "float", **PLAIN, "min": 0.0, "max": 4799.0},
            "sched_arr_time": {"type": "integer", **PLAIN, "min": 0, "max": 4717},
            "arr_delay": {"type": "float", **PLAIN, "min": -1412.0, "max": 2614.0},
            "carrier": {"type": "string", **PLAIN, "domain": carriers},
            "flight": {"type": "integer", "role": "id", **PLAIN, "min": 0, "max": 16999},
            "tailnum": {"type": "string", **PLAIN},
            "origin": {"type": "string", **PLAIN, "domain": ["EWR", "JFK", "LGA"]},
            "dest": {"type": "string", **PLAIN},
            "air_time": {"type": "float", **PLAIN, "min": 0.0, "max": 1370.0},
            "distance": {"type": "integer", **PLAIN, "min": 0, "max": 9886},
            "hour": {"type": "integer", **ANY_DAY, "min": 0, "max": 23},
            "minute": {"type": "integer", **ANY_DAY, "min": 0, "max": 59},
            "time_hour": {"type": "datetime", "role": "event_time", **PLAIN},
            "delayed": {"type": "integer", "role": "label", **PLAIN, "min": 0, "max": 2},
        },
    }


def test_three_months_of_weather_with_gaps() -> None:
    weather = load_table("weather")
    batches = [compute_statistics(weather[weather["month"] == m]) for m in (1, 2, 3)]
    schema = infer_schema_batches(batches).to_dict()
    columns = schema["columns"]
    assert {k: (v.get("role"), v["max_missing"], v.get("min"), v.get("max"), v.get("domain"))
            for k, v in columns.items()} == {
        "origin": (None, 0.0, None, None, ["EWR", "JFK", "LGA"]),
        "year": ("calendar", 0.0, 1900, 2200, None),
        "month": ("calendar", 0.0, 1, 12, None),
        "day": ("calendar", 0.0, 1, 31, None),
        "hour": ("calendar", 0.0, 0, 23, None),
        "temp": (None, 0.0, 0.0, 117.9, None),
        "dewp": (None, 0.0, -78.88, 128.0, None),
        "humid": (None, 0.0, 0.0, 183.6, None),
        "wind_dir": (None, 0.0531, 0.0, 720.0, None),
        "wind_speed": (None, 0.0132, 0.0, 2097.0, None),
        "wind_gust": (None, 0.951, 0.0, 108.2, None),
        "precip": (None, 0.0, 0.0, 0.82, None),
        "pressure": (None, 0.351, 933.0, 1086.0, None),
        "visib": (None, 0.0, 0.0, 20.0, None),
        "time_hour": ("event_time", 0.0, None, None, None),
    }
    assert schema["quality"] == {"min_complete_rows": 0.184}


def test_every_odd_column_and_an_empty_batch() -> None:
    odd = pd.DataFrame({
        "year": [2013] * 300, "month": list(range(1, 13)) * 25, "const": [5] * 300,
        "neg": [-1.5] * 300, "inf": [1.0, np.inf, 2.0] * 100,
        "ident": [f"id{i}" for i in range(300)], "cat": ["a", None, "b"] * 100,
        "allnan": [np.nan] * 300, "when": pd.date_range("2020-01-01", periods=300, freq="h"),
        "flag": [True, False, None] * 100})
    batches = [compute_statistics(odd), compute_statistics(odd.head(0)),
               compute_statistics(odd.head(100))]
    schema = infer_schema_batches(batches, max_domain_size=2, range_margin=0.5).to_dict()
    assert schema == {
        "version": 1, "inferred_from": "DataFrame[300 rows] + DataFrame[100 rows]",
        "drift_share": 0.5,
        "columns": {
            "year": {"type": "integer", **ANY_DAY, "min": 1900, "max": 2200},
            "month": {"type": "integer", **ANY_DAY, "min": 1, "max": 12},
            "const": {"type": "integer", **PLAIN, "min": 0},
            "neg": {"type": "float", **PLAIN},
            "inf": {"type": "float", **PLAIN, "min": 0.5, "max": 2.5, "allow_infinite": True},
            "ident": {"type": "string", **PLAIN},
            "cat": {"type": "string", "required": True, "max_missing": 0.719,
                    "domain": ["a", "b"]},
            "allnan": {"type": "float", "required": True, "max_missing": 1.0},
            "when": {"type": "datetime", "role": "event_time", **PLAIN},
            "flag": {"type": "boolean", "required": True, "max_missing": 0.719,
                     "domain": ["false", "true"]},
        },
    }
