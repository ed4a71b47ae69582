"""A monitor that could not judge says ``no_data`` and why; the CLI exits 3, never 0."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ctloop.cli.monitor import EXIT_NO_DATA, app
from ctloop.monitoring.monitors import MonitorResult, check_decay, check_drift
from ctloop.requestlog.log import open_prediction_log

FEATURES = ["temp", "dewp", "humid", "wind_speed", "distance", "hour", "origin", "carrier"]
runner = CliRunner()


def test_empty_log_and_missing_reference_are_no_data(tmp_path: Path, january) -> None:
    log = open_prediction_log(tmp_path / "log")
    empty = check_drift(log, "delays", january[FEATURES])
    assert (empty.status, empty.fired, empty.n) == ("no_data", False, 0)
    assert "0 served rows" in empty.note
    none = check_drift(log, "delays", None)
    assert none.status == "no_data" and "no reference" in none.note
    decay = check_decay(log, "delays", baseline=0.7)
    assert decay.status == "no_data" and "0 labelled rows" in decay.note


def test_shadow_rows_are_not_counted_as_served(tmp_path: Path, january, make_records) -> None:
    log = open_prediction_log(tmp_path / "log")
    records = make_records(january.iloc[:500])
    log.append([dataclasses.replace(r, served=False) for r in records[:450]] + records[450:])
    result = check_drift(log, "delays", january[FEATURES], min_rows=100)
    assert result.status == "no_data" and "only 50 served rows" in result.note


def test_status_is_consistent_with_fired() -> None:
    common: dict[str, Any] = dict(
        kind="drift",
        model="m",
        value=0.5,
        threshold=0.5,
        baseline=None,
        window={"start": None, "end": None},
        n=10,
    )
    assert MonitorResult(fired=True, **common).status == "fired"
    assert MonitorResult(fired=False, status="fired", **common).fired
    with pytest.raises(ValueError, match="status must be one of"):
        MonitorResult(fired=False, status="maybe", **common)  # type: ignore[arg-type]


def test_cli_exits_3_on_an_empty_log(tmp_path: Path, january) -> None:
    reference = tmp_path / "jan.parquet"
    january[FEATURES].to_parquet(reference)
    log = tmp_path / "log"
    open_prediction_log(log)
    result = runner.invoke(
        app, ["drift", "delays", "--reference", str(reference), "--log", str(log)]
    )
    assert result.exit_code == EXIT_NO_DATA, result.output
    assert "NO DATA" in result.output
    result = runner.invoke(app, ["drift", "delays", "--log", str(log)])
    assert result.exit_code == EXIT_NO_DATA and "no reference" in result.output
    result = runner.invoke(
        app, ["decay", "delays", "--baseline", "0.7", "--log", str(log), "--json"]
    )
    assert result.exit_code == EXIT_NO_DATA and '"status": "no_data"' in result.output
