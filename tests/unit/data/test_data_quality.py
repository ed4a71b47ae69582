"""Duplicates, duplicate ids, complete rows and stale or late batches, each a clear anomaly."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ctloop.cli.data import app
from ctloop.core.errors import UserInputError
from ctloop.data.schema import Schema, infer_schema
from ctloop.data.skew import validate, validate_statistics
from ctloop.data.stats import DatasetStatistics, compute_statistics
from ctloop.examples.flights.data import load_table

runner = CliRunner()


def _month(month: int) -> pd.DataFrame:
    flights = load_table("flights")
    frame = flights[flights["month"] == month].reset_index(drop=True)
    return frame.assign(flight_id=[f"{month}-{i}" for i in range(len(frame))])


@pytest.fixture(scope="module")
def schema() -> Schema:
    jan = _month(1)
    return infer_schema(compute_statistics(jan, duplicates=True, keys=["flight_id"]))


def test_inferred_rules_allow_no_duplicates_when_none_were_seen(schema):
    assert schema.columns["flight_id"].role == "id"
    assert schema.quality.max_duplicate_rows == 0.0 and schema.quality.max_duplicate_ids == 0.0
    assert validate(_month(2), schema).ok


def test_duplicate_rows_and_ids_are_caught(schema):
    feb = _month(2)
    doubled = pd.concat([feb, feb.iloc[:40]], ignore_index=True)
    result = validate(doubled, schema)
    assert "duplicate_rows" in result.kinds() and "duplicate_ids" in result.kinds("flight_id")
    assert "40 row(s) repeat an earlier row" in result.message()
    assert not result.ok  # duplicate ids are errors, duplicate rows warnings by default
    reused = feb.assign(flight_id=feb["flight_id"].where(feb.index % 100 != 0, "2-1"))
    kinds = validate(reused, schema).kinds()
    assert "duplicate_ids" in kinds and "duplicate_rows" not in kinds


def test_complete_rows_threshold():
    frame = pd.DataFrame({"a": [1.0, None, 3.0, 4.0], "b": ["x", "y", None, "z"]})
    schema = infer_schema(compute_statistics(frame))
    schema.quality.min_complete_rows = 0.9
    result = validate_statistics(compute_statistics(frame), schema)
    assert "incomplete_rows" in result.kinds() and "only 50.00% of rows" in result.message()


def test_stale_and_late_batches(schema):
    rules = Schema.from_dict(
        {**schema.to_dict(), "quality": {"max_staleness": "1d", "max_lag": "40d"}}
    )
    feb = compute_statistics(_month(2))
    on_time = validate_statistics(feb, rules, arrived_at=datetime(2013, 3, 1, 12, tzinfo=UTC))
    assert not ({"stale_batch", "late_data"} & on_time.kinds()), on_time.message()
    stale = validate_statistics(feb, rules, arrived_at=datetime(2013, 3, 10, tzinfo=UTC))
    assert "stale_batch" in stale.kinds("time_hour") and not stale.ok
    assert "the batch is stale" in stale.message()
    late = validate_statistics(feb, rules, arrived_at=datetime(2013, 4, 20, tzinfo=UTC))
    assert "late_data" in late.kinds()


def test_quality_counts_survive_saving(tmp_path):
    frame = pd.DataFrame({"id": [1, 1, 2], "x": [0.5, 0.5, None]})
    stats = compute_statistics(frame, duplicates=True, keys=["id"])
    loaded = DatasetStatistics.load(stats.save(tmp_path / "s.json"))
    quality = loaded.quality
    assert quality is not None and stats.quality is not None
    assert quality.to_dict() == stats.quality.to_dict()
    assert (quality.duplicate_rows, quality.duplicate_keys) == (1, {"id": 1})
    assert quality.complete_rows == 2


@pytest.mark.parametrize(
    ("quality", "message"),
    [
        ({"max_staleness": "soon"}, "must be a duration"),
        ({"max_duplicate_rows": 3}, "must be a share"),
        ({"max_dupes": 0}, "unknown keys"),
        ({"event_time": "nope"}, "not a column"),
    ],
)
def test_bad_quality_rules_are_clear_errors(quality, message):
    with pytest.raises(UserInputError, match=message):
        Schema.from_dict({"columns": {"a": {"type": "integer"}}, "quality": quality})


def test_cli_validate_reports_duplicates_and_staleness(tmp_path, schema):
    feb = _month(2)
    path = tmp_path / "feb.parquet"
    pd.concat([feb, feb.iloc[:5]]).to_parquet(path)
    rules = Schema.from_dict(
        {**schema.to_dict(), "quality": {**schema.quality.to_dict(), "max_staleness": "2d"}}
    )
    schema_path = rules.save(tmp_path / "schema.yaml")
    result = runner.invoke(
        app, ["validate", str(path), "--schema", str(schema_path), "--arrived", "2013-03-20T00:00"]
    )
    assert result.exit_code != 0
    assert "duplicate_ids" in result.output and "stale_batch" in result.output
    result = runner.invoke(
        app, ["validate", str(path), "--schema", str(schema_path), "--arrived", "yesterday"]
    )
    assert result.exit_code != 0 and "--arrived must be an ISO" in str(result.exception)


def test_cli_schema_writes_quality_rules_that_catch_duplicates_not_a_clean_batch(tmp_path):
    def batch(seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame({"order_id": [f"{seed}-{i}" for i in range(700)],
                             "amount": rng.normal(size=700), "shop": rng.choice(["a", "b"], 700),
                             "score": np.where(rng.random(700) < 0.05, np.nan, rng.random(700))})

    batch(1).to_parquet(tmp_path / "reference.parquet")
    batch(2).to_parquet(tmp_path / "clean.parquet")
    nxt = batch(3)
    pd.concat([nxt.iloc[:600], nxt.iloc[:100]]).to_parquet(tmp_path / "doubled.parquet")
    schema_path = tmp_path / "schema.yaml"
    assert runner.invoke(app, ["schema", str(tmp_path / "reference.parquet"),
                               "-o", str(schema_path)]).exit_code == 0
    quality = Schema.load(schema_path).quality
    assert quality.max_duplicate_rows == 0.0 and quality.max_duplicate_ids == 0.0
    assert quality.min_complete_rows is not None and 0.8 < quality.min_complete_rows < 0.95

    def kinds(name: str) -> dict[str, str]:
        result = runner.invoke(app, ["validate", str(tmp_path / name), "--schema",
                                     str(schema_path), "--json"])
        found = json.loads(result.output)["validation"]["anomalies"]
        return {a["kind"]: a["severity"] for a in found}

    assert kinds("clean.parquet") == {}
    doubled = kinds("doubled.parquet")  # 100 of 700 rows (14 %) repeat: reported
    assert doubled["duplicate_rows"] == "warning" and doubled["duplicate_ids"] == "error"
