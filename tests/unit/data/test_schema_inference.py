"""Schema inference that the next batch of the same data passes, and that still catches defects."""

from __future__ import annotations

import pandas as pd
import pytest

from ctloop.data.schema import Schema, infer_schema, infer_schema_batches
from ctloop.data.skew import validate_statistics
from ctloop.data.stats import DatasetStatistics, compute_statistics
from ctloop.examples.flights.data import load_table


def _month(month: int) -> pd.DataFrame:
    flights = load_table("flights")
    return flights[flights["month"] == month].reset_index(drop=True)


@pytest.fixture(scope="module")
def january() -> Schema:
    return infer_schema(compute_statistics(_month(1)))


def test_january_schema_accepts_february(january):
    result = validate_statistics(compute_statistics(_month(2)), january)
    assert result.ok, result.message()
    # dep_time: 1.93% missing in January, 5.05% in February
    assert january.columns["dep_time"].max_missing > 0.0505


def test_calendar_constant_and_time_columns_are_recognised(january):
    cols = january.columns
    assert (cols["month"].min, cols["month"].max, cols["month"].role) == (1, 12, "calendar")
    assert (cols["year"].min, cols["year"].max) == (1900, 2200)
    assert (cols["hour"].min, cols["hour"].max) == (0, 23)
    assert cols["time_hour"].role == "event_time"
    assert {"month", "year", "day", "hour", "minute", "time_hour"} <= january.drift_excluded()
    frame = pd.DataFrame({"const": [7] * 50, "x": range(50)})
    const = infer_schema(compute_statistics(frame)).columns["const"]
    assert const.min == 0 and const.max is None  # no range from one value, only the sign


def test_every_later_month_passes_a_schema_of_the_first_quarter():
    schema = infer_schema_batches([compute_statistics(_month(m)) for m in (1, 2, 3)])
    failures = {
        m: validate_statistics(compute_statistics(_month(m)), schema).message()
        for m in range(4, 13)
        if not validate_statistics(compute_statistics(_month(m)), schema).ok
    }
    assert not failures, failures


def test_a_declared_integer_domain_is_checked():
    frame = pd.DataFrame({"code": [1, 2, 3, 1] * 50, "x": range(200)})
    schema = infer_schema(compute_statistics(frame))
    schema.columns["code"].domain = ["1", "2", "3"]
    assert validate_statistics(compute_statistics(frame), schema).ok
    bad = frame.copy()
    bad.loc[7, "code"] = 99
    result = validate_statistics(compute_statistics(bad), schema)
    assert not result.ok and "unseen_category" in result.kinds("code")
    assert "'99' (1 rows)" in result.message()
    # a code column with too many values for exact counts: the extremes still tell
    wide = pd.DataFrame({"code": [*range(2000), 99_999]})
    schema = infer_schema(compute_statistics(wide))
    schema.columns["code"].domain = [str(v) for v in range(2000)]
    assert "unseen_category" in validate_statistics(compute_statistics(wide), schema).kinds("code")


def test_integer_value_counts_survive_saving_and_merging(tmp_path):
    a = compute_statistics(pd.DataFrame({"code": [1, 2, 2]}))
    b = compute_statistics(pd.DataFrame({"code": [3]}))
    merged = DatasetStatistics.load(a.merged(b).save(tmp_path / "s.json"))
    numeric = merged["code"].numeric
    assert numeric is not None and numeric.int_counts == {1: 1, 2: 2, 3: 1}


def test_schema_file_with_bad_role_is_a_clear_error():
    from ctloop.core.errors import UserInputError

    with pytest.raises(UserInputError, match="role must be one of"):
        Schema.from_dict({"columns": {"a": {"type": "integer", "role": "key"}}})
