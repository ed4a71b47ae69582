"""Monitors for every task on generated data: decay's direction, the model's own metric,
drift of answers and labels, the label-free estimate (multiclass; regression refused)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import as_object
from ctloop.models.metrics import metric_value
from ctloop.monitoring.estimate import check_estimated_performance, estimate_multiclass
from ctloop.monitoring.monitors import (
    check_decay,
    check_output_drift,
    served_outputs,
    task_from_log,
)
from ctloop.requestlog.log import open_prediction_log
from ctloop.requestlog.records import PredictionRecord

START = datetime(2026, 1, 1, tzinfo=UTC)
CLASSES: list[str | int] = ["ant", "bee", "cat", "dog"]


def regression_log(path: Path, *, shift: float = 0.0, n: int = 600, seed: int = 0):
    """A log of a regression model: predictions ~ truth before ``n // 2``, labels moved by
    ``shift`` after it (a change in the target's relation to the inputs)."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(30, 10, n)
    prediction = truth + rng.normal(0, 2, n)
    labels = truth + np.where(np.arange(n) >= n // 2, shift, 0.0)
    log = open_prediction_log(path)
    log.append([
        PredictionRecord(request_id=f"r{i}", model_name="minutes", model_version=1,
                         route="champion", ts=START + timedelta(minutes=i),
                         prediction=float(prediction[i]), features={"x": float(truth[i])},
                         latency_ms=1.0)
        for i in range(n)
    ])
    log.add_labels(pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "label": labels}))
    return log, prediction, labels


def test_regression_decay_fires_above_for_rmse(tmp_path: Path) -> None:
    log, prediction, labels = regression_log(tmp_path / "log", shift=8.0)
    half = START + timedelta(minutes=300)
    before = check_decay(log, "minutes", baseline=2.0, max_drop=1.0, end=half)
    after = check_decay(log, "minutes", baseline=2.0, max_drop=1.0, start=half)
    assert before.details["metric"] == "rmse" and before.details["task"] == "regression"
    assert before.status == "ok" and before.threshold == pytest.approx(3.0)
    assert after.fired and after.value == pytest.approx(
        metric_value(labels[300:], prediction[300:], "rmse"))
    assert "fires above 3" in after.summary() and after.details["higher_is_better"] is False
    with pytest.raises(UserInputError, match="Unknown metric 'rsme'"):
        check_decay(log, "minutes", metric="rsme", baseline=2.0)


def test_monitor_decay_cli_defaults_to_the_models_own_metric(tmp_path: Path) -> None:
    regression_log(tmp_path / "log", shift=8.0)
    proc = subprocess.run(
        [sys.executable, "-m", "ctloop", "monitor", "decay", "minutes", "--baseline", "2.0",
         "--max-drop", "1.0", "--log", str(tmp_path / "log")],
        cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr  # fired
    assert "rmse" in proc.stdout and "fires above" in proc.stdout and "roc_auc" not in proc.stdout


def test_output_drift_of_predictions_and_labels(tmp_path: Path) -> None:
    log, _, _ = regression_log(tmp_path / "log", shift=8.0)
    half = START + timedelta(minutes=300)
    first = served_outputs(log.read(model_name="minutes", end=half, with_labels=True),
                           "regression")
    assert list(first.columns) == ["prediction", "label"]
    moved = check_output_drift(log, "minutes", first, task="regression", start=half)
    assert moved.fired and moved.details["drifted"] == ["label"]  # answers stayed, labels moved
    same, _, _ = regression_log(tmp_path / "same", shift=0.0, seed=1)
    quiet = check_output_drift(same, "minutes", first, task="regression", start=half)
    assert quiet.status == "ok" and quiet.details["drifted"] == []
    assert check_output_drift(log, "minutes", first, task="regression",
                              start=datetime(2030, 1, 1, tzinfo=UTC)).status == "no_data"


def test_regression_estimate_is_refused_with_the_reason(tmp_path: Path) -> None:
    log, _, _ = regression_log(tmp_path / "log")
    with pytest.raises(UserInputError, match="A regression model's rmse cannot be estimated "
                       "without labels") as info:
        check_estimated_performance(log, "minutes", manifest={"task": "regression"},
                                    metric="rmse", baseline=3.0)
    assert "\n" not in str(info.value)


def _multiclass(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities and labels drawn from them."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, 4))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in proba])
    return proba, labels


def test_multiclass_estimate_brackets_the_realised_metrics() -> None:
    proba, labels = _multiclass(4000)
    estimates = estimate_multiclass(proba, n_sim=200)
    names = np.asarray(CLASSES, dtype=object)[labels]
    for metric in ("accuracy", "macro_f1", "weighted_f1"):
        realised = metric_value(names, proba, metric, classes=CLASSES)
        e = estimates[metric]
        assert e.lo is not None and e.hi is not None and realised is not None
        assert e.lo - 0.01 <= realised <= e.hi + 0.01, metric
    realised_auc = metric_value(names, proba, "roc_auc", classes=CLASSES)
    assert estimates["roc_auc"].value == pytest.approx(realised_auc, abs=0.02)


class ProbabilityLog:
    """The request log's read() shape with per-class probabilities, as the typed log will
    store them for multiclass models (issue 18.3)."""

    def __init__(self, proba: np.ndarray, labels: np.ndarray) -> None:
        n = len(proba)
        self.frame = pd.DataFrame({
            "request_id": [f"r{i}" for i in range(n)], "model_name": "kinds",
            "model_version": 1, "ts": [START + timedelta(minutes=i) for i in range(n)],
            "prediction": proba.max(axis=1), "served": True, "status": 200,
            "probabilities": list(proba), "label": labels,
        })

    def read(self, **kwargs: object) -> pd.DataFrame:
        return self.frame


def test_multiclass_decay_and_estimate_from_logged_probabilities() -> None:
    proba, labels = _multiclass(1000, seed=3)
    names = np.asarray(CLASSES, dtype=object)[labels]
    log = ProbabilityLog(proba, names)
    assert task_from_log(log.frame) == "multiclass"
    unknown = check_decay(log, "kinds", baseline=0.95)  # type: ignore[arg-type]
    assert unknown.status == "no_data" and "classes are unknown" in unknown.note
    decay = check_decay(log, "kinds", baseline=0.95, max_drop=0.05,  # type: ignore[arg-type]
                        classes=CLASSES)
    assert decay.details["metric"] == "accuracy" and decay.fired
    assert "fires below 0.9" in decay.summary()
    assert decay.value == pytest.approx(metric_value(names, proba, "accuracy", classes=CLASSES))
    macro = check_decay(log, "kinds", metric="macro_f1", baseline=0.3,  # type: ignore[arg-type]
                        classes=CLASSES)
    assert macro.status == "ok"
    manifest = {"task": "multiclass", "signature": {"classes": CLASSES}}
    estimate = check_estimated_performance(log, "kinds", manifest=manifest,  # type: ignore[arg-type]
                                           baseline=0.95, max_drop=0.05)
    assert estimate.details["metric"] == "accuracy" and estimate.fired
    assert as_object(estimate.details["realized"])["value"] == pytest.approx(decay.value)
    outputs = served_outputs(log.frame, "multiclass", CLASSES)
    assert set(outputs["prediction"]) <= set(CLASSES) and set(outputs["label"]) == set(CLASSES)


def test_multiclass_calibration_corrects_an_overconfident_model() -> None:
    from ctloop.models.calibration import apply_class_calibrations, fit_class_calibrations

    proba, labels = _multiclass(6000, seed=4)
    sharp = proba ** 3 / (proba ** 3).sum(axis=1, keepdims=True)  # same decisions, overconfident
    names = np.asarray(CLASSES, dtype=object)[labels]
    maps = fit_class_calibrations(sharp[:3000], names[:3000], CLASSES)
    assert maps is not None and len(maps) == 4
    realised = metric_value(names[3000:], sharp[3000:], "accuracy", classes=CLASSES)
    naive = estimate_multiclass(sharp[3000:], n_sim=50)["accuracy"].value
    fixed = estimate_multiclass(sharp[3000:], n_sim=50, calibrated=apply_class_calibrations(
        sharp[3000:], maps))["accuracy"].value
    assert naive is not None and fixed is not None and realised is not None
    assert abs(fixed - realised) < 0.02 < abs(naive - realised)


def test_multiclass_decay_and_output_drift_on_the_real_request_log(tmp_path: Path) -> None:
    """Integer classes through the typed log: ``probabilities`` list column, float labels."""
    from ctloop.requestlog.entries import Entry, SchemaBook, build_tables

    proba, labels = _multiclass(800, seed=5)
    n = len(proba)
    ids = [f"m{i}" for i in range(n)]
    built = build_tables([Entry(
        model_name="digits", model_version=1, route="champion", protocol="v2",
        ts=START, latency_ms=1.0, request_ids=ids, scores=proba,
        inputs={"x": np.arange(n, dtype=np.float64)}, labels=np.argmax(proba, axis=1),
    )], SchemaBook())
    assert not built.quarantined
    log = open_prediction_log(tmp_path / "log")
    for table in built.tables:
        log.append_table(table)
    log.add_labels(pd.DataFrame({"request_id": ids, "label": labels.astype(float)}))
    decay = check_decay(log, "digits", baseline=0.99, classes=[0, 1, 2, 3])
    assert decay.details["task"] == "multiclass" and decay.details["metric"] == "accuracy"
    assert decay.value == pytest.approx(metric_value(labels, proba, "accuracy")) and decay.fired
    frame = log.read(model_name="digits", with_labels=True)
    outputs = served_outputs(frame, "multiclass", [0, 1, 2, 3])
    assert set(outputs["prediction"]) <= {"0", "1", "2", "3"}
    assert set(outputs["label"]) == {"0", "1", "2", "3"}
    same = check_output_drift(log, "digits", outputs, task="multiclass", classes=[0, 1, 2, 3])
    assert same.status == "ok"
    skewed = outputs.assign(prediction="0", label="0")
    moved = check_output_drift(log, "digits", skewed, task="multiclass", classes=[0, 1, 2, 3])
    assert moved.fired and set(moved.strings("drifted")) == {"prediction", "label"}


def test_monitor_outputs_cli_compares_a_window_with_an_earlier_one(tmp_path: Path) -> None:
    regression_log(tmp_path / "log", shift=8.0)
    command = [sys.executable, "-m", "ctloop", "monitor", "outputs", "minutes",
               "--reference-since", "2026-01-01T00:00", "--reference-until", "2026-01-01T05:00",
               "--since", "2026-01-01T05:00", "--log", str(tmp_path / "log")]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr  # the labels moved
    assert "output_drift minutes: FIRED: drifted: label of prediction, label" in proc.stdout
    bad = subprocess.run([*command[:6], "--reference-since", "soon", *command[8:]],
                         cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and "--reference-since must be an ISO date/time" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
