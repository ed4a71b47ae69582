"""Label-free performance estimates against the metrics realised when labels arrive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import as_number, as_object
from ctloop.models import fit_model, load_model
from ctloop.models.calibration import finalize_model
from ctloop.models.metrics import metric_matrix
from ctloop.monitoring.estimate import check_estimated_performance, estimate_performance
from ctloop.requestlog.log import open_prediction_log
from ctloop.requestlog.records import PredictionRecord

FEATURES = ["x1", "x2", "x3"]


def _data(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """A fixed P(y | x); ``shift`` moves x towards the boundary (covariate shift)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 3)) * (1 - shift) + shift * rng.normal(0.8, 0.3, (n, 3))
    logit = 2.0 * x[:, 0] - 1.5 * x[:, 1] + 0.5 * x[:, 2] - 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("est") / "m"
    fit_model(
        _data(6000, 0),
        label="y",
        features=FEATURES,
        algorithm="lightgbm",
        params={"n_estimators": 80, "verbose": -1},
    ).save(path)
    finalize_model(path, _data(4000, 1), label="y", costs={"fn": 3, "fp": 1})
    return path


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir)


@pytest.mark.parametrize("shift", [0.0, 0.3, 0.5])
def test_estimates_track_the_realised_metrics_under_covariate_shift(model, shift):
    window = _data(3000, 10 + int(shift * 10), shift)
    scores = model.predict(window)
    from ctloop.models.calibration import calibration_of
    from ctloop.models.metrics import Costs

    est = estimate_performance(
        scores,
        calibration=calibration_of(model.manifest),
        threshold=model.decision_threshold,
        costs=Costs(fn=3, fp=1),
    )
    y = window["y"].to_numpy()
    real = metric_matrix(
        np.ones((1, len(y))),
        y,
        scores,
        task="classification",
        threshold=model.decision_threshold,
        costs=Costs(fn=3, fp=1),
    )
    for name in ("roc_auc", "accuracy", "precision", "recall", "expected_cost"):
        e, r = est[name], float(real[name][0])
        assert e.value is not None and e.lo is not None and e.hi is not None, name
        assert abs(e.value - r) < 0.04, (name, e, r)
        assert e.lo <= e.value <= e.hi


def test_the_estimate_falls_when_shift_makes_the_task_harder(model):
    calm = estimate_performance(model.predict(_data(3000, 20)))
    shifted = estimate_performance(model.predict(_data(3000, 21, 0.8)))
    low, high = shifted["roc_auc"].value, calm["roc_auc"].value
    assert low is not None and high is not None and low < high - 0.05


def _log(path: Path, model, frame: pd.DataFrame, labels: bool):
    log = open_prediction_log(path)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    scores = model.predict(frame)
    log.append(
        [
            PredictionRecord(
                request_id=f"r{i}",
                model_name="m",
                model_version=1,
                route="champion",
                ts=t0 + timedelta(seconds=i),
                prediction=float(s),
                features={str(k): v for k, v in row.items()},
                entity={},
                latency_ms=1.0,
            )
            for i, (s, row) in enumerate(
                zip(scores, frame[FEATURES].to_dict("records"), strict=True)
            )
        ]
    )
    log.flush()
    if labels:
        log.add_labels(
            pd.DataFrame(
                {"request_id": [f"r{i}" for i in range(len(frame))], "label": frame["y"].to_numpy()}
            )
        )
    return log


def test_monitor_fires_on_an_estimated_drop_and_records_the_realised_error(tmp_path, model):
    baseline = 0.9
    log = _log(tmp_path / "a", model, _data(2000, 30, 0.5), labels=True)
    result = check_estimated_performance(
        log, "m", manifest=model.manifest, baseline=baseline, max_drop=0.05
    )
    assert result.status == "fired" and result.kind == "estimate"
    band = result.band
    assert result.details["calibrated"] and band and band[0] is not None and result.value
    assert band[0] < result.value
    realized = as_object(result.details["realized"])
    assert realized["n_labels"] == 2000 and abs(as_number(realized["error"]) or 1) < 0.04
    assert "estimated roc_auc" in result.summary()
    calm = _log(tmp_path / "b", model, _data(2000, 31), labels=False)
    ok = check_estimated_performance(calm, "m", manifest=model.manifest, baseline=0.85)
    assert ok.status == "ok" and "realized" not in ok.details


def test_monitor_without_rows_or_baseline_is_no_data(tmp_path, model):
    empty = open_prediction_log(tmp_path / "empty")
    assert check_estimated_performance(empty, "m", baseline=0.9).status == "no_data"
    log = _log(tmp_path / "c", model, _data(500, 32), labels=False)
    result = check_estimated_performance(log, "m", manifest=model.manifest)
    assert result.status == "no_data" and "no baseline" in result.note
    with pytest.raises(UserInputError, match="Cannot estimate"):
        check_estimated_performance(log, "m", metric="r2", baseline=0.5)


def test_cli_estimate_fires_with_exit_1(tmp_path, model, model_dir):
    from typer.testing import CliRunner

    from ctloop.cli.monitor import EXIT_FIRED, app

    _log(tmp_path / "log", model, _data(1000, 33, 0.5), labels=False)
    result = CliRunner().invoke(
        app,
        [
            "estimate",
            "m",
            "--model",
            str(model_dir),
            "--baseline",
            "0.9",
            "--log",
            str(tmp_path / "log"),
        ],
    )
    assert result.exit_code == EXIT_FIRED, result.output
    assert "estimated roc_auc" in result.output
