"""Every task end to end on generated data: fit, save, load, evaluate, gate, explain, register,
show (CLI and UI). Multiclass with four string classes, regression, binary unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ctloop.components.training import evaluate, push, train
from ctloop.core.errors import NotTrainable, UserInputError
from ctloop.core.jsontypes import as_list, as_object, as_str
from ctloop.core.settings import load_settings
from ctloop.metadata import open_metadata_store
from ctloop.models import GateConfig, evaluate_models, fit_model, judge, load_model
from ctloop.models.evaluation import evaluate_predictions
from ctloop.models.explain import explain
from ctloop.pipeline import Dataset, Output, component, pipeline, run
from ctloop.registry import ModelRegistry
from ctloop.ui import create_app

CLASSES = ["ant", "bee", "cat", "dog"]
FEATURES = ["x1", "x2", "site"]


def generated(n: int, seed: int = 0) -> pd.DataFrame:
    """Four string classes from two noisy half-planes; a numeric target from the same inputs."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    site = rng.choice(["north", "south", "east"], n)
    index = (x1 + rng.normal(0, 0.3, n) > 0).astype(int) * 2 + (
        x2 + rng.normal(0, 0.3, n) > 0).astype(int)
    return pd.DataFrame({
        "x1": x1, "x2": x2, "site": site,
        "kind": np.asarray(CLASSES, dtype=object)[index],
        "minutes": 20 + 8 * x1 - 5 * x2 + (site == "north") * 6 + rng.normal(0, 2, n),
        "late": (x1 + rng.normal(0, 0.8, n) > 0.5).astype(int),
    })


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return generated(3000)


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    return generated(1200, seed=1)


@pytest.mark.parametrize("algorithm", ["lightgbm", "xgboost", "logistic",
                                       "hist_gradient_boosting",
                                       "sklearn.ensemble.RandomForestClassifier"])
def test_multiclass_string_classes_every_flavor(
    algorithm: str, data: pd.DataFrame, holdout: pd.DataFrame, tmp_path: Path
) -> None:
    params = {"n_estimators": 30} if algorithm in ("lightgbm", "xgboost") else None
    trained = fit_model(data, label="kind", features=FEATURES, algorithm=algorithm,
                        params=params)
    assert trained.task == "multiclass" and list(trained.signature.classes or ()) == CLASSES
    trained.save(tmp_path / "m")
    model = load_model(tmp_path / "m")
    assert model.task == "multiclass" and list(model.signature.classes or ()) == CLASSES
    for rows in (1, 2, 100):
        proba = model.predict(holdout.head(rows))
        assert proba.shape == (rows, 4) and np.allclose(proba.sum(axis=1), 1.0)
    labels = model.predict_labels(holdout)
    assert set(labels) <= set(CLASSES) and (labels == holdout["kind"]).mean() > 0.7
    report = evaluate_models({"candidate": model}, holdout, label="kind",
                             slice_columns=["site"], n_boot=50)
    overall = report["models"]["candidate"]["overall"]
    assert overall["classes"] == CLASSES
    assert np.asarray(overall["confusion_matrix"]).shape == (4, 4)
    assert overall["metrics"]["accuracy"]["value"] == pytest.approx((labels == holdout["kind"]
                                                                     ).mean())
    assert overall["metrics"]["macro_f1"]["lo"] <= overall["metrics"]["macro_f1"]["value"]
    assert set(report["models"]["candidate"]["slices"]["site"]) == {"north", "south", "east"}
    if algorithm in ("lightgbm", "xgboost", "logistic"):
        explained = explain(model, holdout.head(5))
        assert explained.per_class is not None and explained.per_class.shape == (5, 4, 3)
        assert np.allclose(np.asarray(explained.class_probabilities()),
                           model.predict(holdout.head(5)), atol=1e-6)
        assert [r["class"] for r in explained.to_rows(2)] == list(labels[:5])


@pytest.mark.parametrize("algorithm", ["lightgbm", "xgboost", "logistic",
                                       "sklearn.ensemble.RandomForestRegressor"])
def test_regression_every_flavor(
    algorithm: str, data: pd.DataFrame, holdout: pd.DataFrame, tmp_path: Path
) -> None:
    params = {"n_estimators": 60} if algorithm in ("lightgbm", "xgboost") else None
    trained = fit_model(data, label="minutes", features=FEATURES, algorithm=algorithm,
                        params=params, metric="rmse")
    assert trained.task == "regression" and trained.signature.classes is None
    trained.save(tmp_path / "r")
    model = load_model(tmp_path / "r")
    report = evaluate_models({"candidate": model}, holdout, label="minutes", n_boot=50)
    overall = report["models"]["candidate"]["overall"]
    assert set(overall["metrics"]) == {"rmse", "mae", "r2", "mape"}
    assert overall["metrics"]["rmse"]["value"] < 4.5 and overall["metrics"]["r2"]["value"] > 0.8
    assert overall["residuals"]["n"] == len(holdout)
    assert abs(overall["residuals"]["mean"]) < 1.0
    if algorithm != "sklearn.ensemble.RandomForestRegressor":
        explained = explain(model, holdout.head(3))
        assert explained.space == "value"
        assert np.allclose(explained.predictions(), model.predict(holdout.head(3)), atol=1e-4)


def test_binary_is_unchanged(data: pd.DataFrame, holdout: pd.DataFrame, tmp_path: Path) -> None:
    trained = fit_model(data, label="late", features=FEATURES, algorithm="lightgbm",
                        params={"n_estimators": 30})
    assert trained.task == "binary" and list(trained.signature.classes or ()) == [0, 1]
    trained.save(tmp_path / "b")
    model = load_model(tmp_path / "b")
    assert model.predict(holdout.head(2)).shape == (2,)
    overall = evaluate_models({"candidate": model}, holdout, label="late", n_boot=20)[
        "models"]["candidate"]["overall"]
    assert set(overall["metrics"]) == {"roc_auc", "log_loss", "accuracy", "precision", "recall",
                                       "f1"}
    assert set(overall["confusion"]) == {"tp", "fp", "tn", "fn"}


def test_gate_refuses_a_candidate_that_drops_a_class(
    data: pd.DataFrame, holdout: pd.DataFrame, tmp_path: Path
) -> None:
    fit_model(data, label="kind", features=FEATURES, algorithm="logistic").save(tmp_path / "c")
    merged = data.assign(kind=data["kind"].replace({"dog": "cat"}))  # never learns 'dog'
    fit_model(merged, label="kind", features=FEATURES, algorithm="logistic").save(tmp_path / "d")
    models = {"candidate": load_model(tmp_path / "d"), "champion": load_model(tmp_path / "c")}
    assert list(models["candidate"].signature.classes or ()) == ["ant", "bee", "cat"]
    report = evaluate_models(models, holdout, label="kind", n_boot=20)
    assert report["classes"] == CLASSES  # compared on the union of the classes
    gate = GateConfig.from_dict({"changes": {"accuracy": -1.0}})
    blessing = judge(report, gate)
    assert not blessing["blessed"]
    assert blessing["failed"] == ["keeps every class the champion predicts"]
    assert "never predicts class dog" in blessing["summary"]
    assert blessing["classes"]["problems"][0]["class"] == "dog"
    allowed = judge(report, GateConfig.from_dict({"changes": {"accuracy": -1.0},
                                                  "keep_classes": False}))
    assert allowed["blessed"]
    # rmse's direction: a lower candidate is an improvement, named as such
    rule = GateConfig.from_dict({"changes": {"rmse": 0.0}}).changes[0]
    assert rule.name == "rmse change vs champion >= 0 (lower is better)"


def test_gate_refuses_a_binary_candidate_whose_recall_falls_to_zero() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    frame = pd.DataFrame({"y": y})
    champion = np.clip(0.6 * y + rng.uniform(0, 0.4, 500), 0, 1)
    candidate = champion * 0.45  # ranks the same (same AUC), never reaches 0.5
    report = evaluate_predictions(frame, {"candidate": candidate, "champion": champion},
                                  label="y", candidate="candidate", baseline="champion",
                                  n_boot=20)
    blessing = judge(report, GateConfig.from_dict({"changes": {"roc_auc": -0.005}}))
    assert not blessing["blessed"]
    assert "never predicts class 1" in blessing["summary"]
    first = judge(report, GateConfig.from_dict({"floors": {"roc_auc": 0.5}}), champion=None)
    assert first["blessed"] and first["classes"]["status"] == "skipped"


def test_undefined_floor_says_why() -> None:
    frame = pd.DataFrame({"y": np.ones(50, dtype=int)})
    report = evaluate_predictions(frame, {"candidate": np.full(50, 0.7)}, label="y", n_boot=10)
    blessing = judge(report, GateConfig.from_dict({"floors": {"roc_auc": 0.6}}))
    detail = blessing["rules"][0]["detail"]
    assert "roc_auc is undefined on this holdout: one class (only class '1' of 2" in detail
    assert "None" not in blessing["summary"] and blessing["held"] and not blessing["blessed"]


def test_bad_input_is_one_clear_line(data: pd.DataFrame) -> None:
    one_class = data.assign(kind="ant")
    with pytest.raises(NotTrainable, match="The label 'kind' has one class only \\(ant\\)"):
        fit_model(one_class, label="kind", features=FEATURES)
    with pytest.raises(UserInputError, match="metric 'macro_f1' needs a multiclass task, but the"
                       " label 'minutes' holds numbers"):
        fit_model(data, label="minutes", features=FEATURES, metric="macro_f1")
    with pytest.raises(UserInputError, match="metric 'rmse' needs a regression task, but the "
                       "label 'kind' holds strings"):
        fit_model(data, label="kind", features=FEATURES, metric="rmse")
    with pytest.raises(UserInputError, match="task must be one of binary, multiclass, "
                       "regression; got 'ranking'"):
        fit_model(data, label="kind", features=FEATURES, task="ranking")
    with pytest.raises(UserInputError, match="A regression task needs a scikit-learn regressor"):
        fit_model(data, label="minutes", features=FEATURES,
                  algorithm="sklearn.ensemble.RandomForestClassifier")


@component(version="1")
def generated_rows(n: int, seed: int, drop: str, out: Output[Dataset]) -> int:
    frame = generated(n, seed)
    if drop:
        frame = frame.assign(kind=frame["kind"].replace({drop: "cat"}))
    out.write(frame)
    return len(frame)


@pipeline
def multiclass_loop(drop: str = ""):
    rows = generated_rows(n=2000, seed=0, drop=drop)
    holdout = generated_rows(n=800, seed=1, drop="")
    model = train(data=rows, label="kind", features=FEATURES, algorithm="lightgbm",
                  params={"n_estimators": 20}, metric="macro_f1")
    judged = evaluate(candidate=model, data=holdout, model_name="kinds",
                      gate={"changes": {"macro_f1": -0.5}}, slice_columns=["site"], n_boot=30)
    push(model=model, evaluation=judged.outputs["evaluation"],
         blessing=judged.outputs["blessing"], model_name="kinds")


def test_pipeline_registers_multiclass_and_cli_ui_show_it(ctloop_home: Path) -> None:
    first = run(multiclass_loop, {})
    assert first.ok, first.run.error
    assert as_object(first.steps["train"].outputs["return"])["classes"] == CLASSES
    assert as_object(first.steps["push"].outputs["return"])["promoted"] is True
    dropped = run(multiclass_loop, {"drop": "dog"})
    assert dropped.ok, dropped.run.error
    verdict = as_object(dropped.steps["evaluate"].outputs["return"])
    assert not verdict["blessed"] and verdict["failed"] == [
        "keeps every class the champion predicts"]
    assert "never predicts class dog" in as_str(verdict["summary"])
    store = open_metadata_store()
    try:
        v1 = ModelRegistry(store).get("kinds:1")
        assert as_object(v1.properties["signature"])["task"] == "multiclass"
        overall = as_object(as_object(v1.properties["evaluation"])["overall"])
        assert len(as_list(overall["confusion_matrix"])) == 4
    finally:
        store.close()
    shown = subprocess.run([sys.executable, "-m", "ctloop", "models", "show", "kinds:1"],
                           cwd=ctloop_home, capture_output=True, text=True, check=True,
                           env=None).stdout
    assert "Confusion matrix" in shown and "Per class" in shown and "macro_f1" in shown
    assert "dog" in shown
    listing = subprocess.run([sys.executable, "-m", "ctloop", "models", "show", "kinds"],
                             cwd=ctloop_home, capture_output=True, text=True, check=True).stdout
    assert "accuracy" in listing and "roc_auc" not in listing
    client = TestClient(create_app(load_settings()))
    page = client.get("/models/kinds/versions/1").text
    assert 'id="confusion-matrix"' in page and 'id="per-class"' in page
    refused = client.get("/models/kinds/versions/2").text
    assert "never predicts class dog" in refused
    compared = client.get("/models/kinds/compare?a=1&b=2").text
    assert 'id="confusion-matrix"' in compared and "by site (accuracy, higher is better)" in (
        compared)
    data = json.loads(subprocess.run(
        [sys.executable, "-m", "ctloop", "models", "show", "kinds:2", "--json"],
        cwd=ctloop_home, capture_output=True, text=True, check=True).stdout)
    assert data["properties"]["blessing"]["classes"]["status"] == "fail"


def test_binary_string_labels_train_calibrate_and_evaluate(
    data: pd.DataFrame, holdout: pd.DataFrame, tmp_path: Path
) -> None:
    from ctloop.models.calibration import finalize_model

    words = {0: "on time", 1: "late"}
    train_rows = data.assign(late=data["late"].map(words))
    test_rows = holdout.assign(late=holdout["late"].map(words))
    fit_model(train_rows, label="late", features=FEATURES, algorithm="lightgbm",
              params={"n_estimators": 20}).save(tmp_path / "s")
    settings = finalize_model(tmp_path / "s", test_rows, label="late", costs={"fn": 5, "fp": 1})
    assert "calibration" in settings and 0 < settings["decision_threshold"] < 1
    model = load_model(tmp_path / "s")
    assert list(model.signature.classes or ()) == ["late", "on time"]  # P('on time') answered
    overall = evaluate_models({"candidate": model}, test_rows, label="late", n_boot=20)[
        "models"]["candidate"]["overall"]
    numeric = evaluate_models({"candidate": model}, holdout.assign(
        late=1 - holdout["late"]), label="late", n_boot=20)["models"]["candidate"]["overall"]
    assert overall["metrics"]["roc_auc"]["value"] == pytest.approx(
        numeric["metrics"]["roc_auc"]["value"])
    assert list(overall["per_class"]) == ["late", "on time"]
