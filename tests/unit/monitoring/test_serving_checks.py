"""Skew of served features against the training schema, unfilled inputs and outlier rates."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from ctloop.data.schema import infer_schema
from ctloop.data.stats import compute_statistics
from ctloop.monitoring.serving_checks import check_outliers, check_serving_skew, missing_inputs
from ctloop.requestlog.log import open_prediction_log

FEATURES = ["temp", "dewp", "humid", "wind_speed", "distance", "hour", "origin", "carrier"]


def _schema(january):
    return infer_schema(compute_statistics(january[FEATURES]))


def test_served_features_that_fit_the_schema_pass(tmp_path: Path, january, make_records):
    log = open_prediction_log(tmp_path / "log")
    log.append(make_records(january.iloc[::2]))
    result = check_serving_skew(log, "delays", _schema(january), reference=january[FEATURES])
    assert result.status == "ok", result.details["anomalies"]
    assert result.details["drifted_features"] == []


def test_a_new_category_and_out_of_range_values_fire(tmp_path: Path, january, make_records):
    served = january.iloc[:600].copy()
    served["origin"] = "XXX"
    served["distance"] = -served["distance"]
    log = open_prediction_log(tmp_path / "log")
    log.append(make_records(served))
    result = check_serving_skew(log, "delays", _schema(january))
    assert result.status == "fired"
    text = " ".join(result.strings("anomalies"))
    assert "origin" in text and "XXX" in text and "distance" in text


def test_shadow_rows_are_not_checked(tmp_path: Path, january, make_records):
    served = january.iloc[:600].copy()
    served["origin"] = "XXX"
    log = open_prediction_log(tmp_path / "log")
    shadow = [dataclasses.replace(r, served=False) for r in make_records(served)]
    log.append(shadow + make_records(january.iloc[600:1200], prefix="ok-"))
    assert check_serving_skew(log, "delays", _schema(january)).status == "ok"


def test_no_rows_is_no_data(tmp_path: Path, january):
    log = open_prediction_log(tmp_path / "log")
    assert check_serving_skew(log, "delays", _schema(january)).status == "no_data"
    result = check_outliers(log, "delays")
    assert result.status == "no_data" and "need 100" in result.note


def test_outlier_monitor_without_logged_scores_is_no_data(tmp_path: Path, january, make_records):
    log = open_prediction_log(tmp_path / "log")
    log.append(make_records(january.iloc[:300]))
    frame = log.read(model_name="delays")
    result = check_outliers(log, "delays")
    if "outlier_score" not in frame.columns or frame["outlier_score"].isna().all():
        assert result.status == "no_data" and "no outlier scores" in result.note
    else:  # the log keeps scores: none were set on these records
        assert result.status == "no_data"


def test_missing_inputs_are_counted_from_the_log_column():
    frame = pd.DataFrame({"missing": [("temp",), (), ("temp", "dewp"), None, "wind_speed"]})
    assert missing_inputs(frame) == {"temp": 2, "dewp": 1, "wind_speed": 1}
    assert missing_inputs(pd.DataFrame({"x": [1]})) == {}


def test_cli_skew_fires_on_an_unseen_category(tmp_path: Path, january, make_records):
    from typer.testing import CliRunner

    from ctloop.cli.monitor import EXIT_FIRED, EXIT_NO_DATA, app

    served = january.iloc[:300].copy()
    served["carrier"] = "ZZ"
    log = open_prediction_log(tmp_path / "log")
    log.append(make_records(served))
    log.flush()
    schema = _schema(january).save(tmp_path / "schema.yaml")
    result = CliRunner().invoke(app, ["skew", "delays", "--schema", str(schema),
                                      "--log", str(tmp_path / "log")])
    assert result.exit_code == EXIT_FIRED, result.output
    assert "ZZ" in result.output
    result = CliRunner().invoke(app, ["outliers", "delays", "--log", str(tmp_path / "log")])
    assert result.exit_code == EXIT_NO_DATA and "no outlier scores" in result.output
