"""Tasks and their metrics on generated data: multiclass (string classes), regression, binary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from ctloop.core.errors import NotTrainable, UserInputError
from ctloop.models.metrics import (
    bootstrap_weights,
    encode_labels,
    metric_matrix,
    metric_value,
    metrics_with_ci,
)
from ctloop.models.tasks import (
    better_word,
    infer_task,
    label_classes,
    resolve_task,
)

CLASSES = ["ant", "bee", "cat", "dog"]


@pytest.fixture
def multiclass() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    n = 3000
    y = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4)) + 1.5 * np.eye(4)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, np.round(proba, 3) / np.round(proba, 3).sum(axis=1, keepdims=True)


def test_multiclass_point_metrics_match_sklearn(multiclass: tuple) -> None:
    y, p = multiclass
    got = metric_matrix(np.ones((1, len(y))), y, p, task="multiclass")
    pred = p.argmax(axis=1)
    assert got["accuracy"][0] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["macro_f1"][0] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["weighted_f1"][0] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert got["log_loss"][0] == pytest.approx(skm.log_loss(y, p))
    assert got["roc_auc"][0] == pytest.approx(
        skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))


def test_multiclass_resamples_equal_sklearn_on_repeated_rows(multiclass: tuple) -> None:
    y, p = multiclass
    w = bootstrap_weights(len(y), 4, seed=2)
    got = metric_matrix(w, y, p, task="multiclass")
    for b in range(4):
        idx = np.repeat(np.arange(len(y)), w[b].astype(int))
        assert got["macro_f1"][b] == pytest.approx(
            skm.f1_score(y[idx], p[idx].argmax(axis=1), average="macro"))
        assert got["roc_auc"][b] == pytest.approx(
            skm.roc_auc_score(y[idx], p[idx], multi_class="ovr"))


def test_multiclass_intervals_table_and_confusion_matrix(multiclass: tuple) -> None:
    y, p = multiclass
    labels = np.asarray(CLASSES, dtype=object)[y]
    index, classes = encode_labels(labels, CLASSES)
    assert classes == CLASSES and (index == y).all()
    out = metrics_with_ci(index, {"m": p}, task="multiclass", n_boot=100, classes=CLASSES)["m"]
    for name in ("accuracy", "macro_f1", "weighted_f1", "log_loss", "roc_auc"):
        entry = out["metrics"][name]
        assert entry["lo"] <= entry["value"] <= entry["hi"]
    matrix = np.asarray(out["confusion_matrix"])
    assert matrix.shape == (4, 4) and matrix.sum() == len(y)
    assert (matrix == skm.confusion_matrix(y, p.argmax(axis=1))).all()
    assert list(out["per_class"]) == CLASSES
    bee = out["per_class"]["bee"]
    assert bee["recall"] == pytest.approx(skm.recall_score(y, p.argmax(axis=1), average=None)[1])
    assert bee["support"] == int((y == 1).sum())


def test_regression_metrics_with_mape_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(50, 10, 400)
    p = y + rng.normal(0, 3, 400)
    out = metrics_with_ci(y, {"m": p}, task="regression", n_boot=100)["m"]["metrics"]
    assert out["mape"]["value"] == pytest.approx(skm.mean_absolute_percentage_error(y, p))
    assert out["rmse"]["value"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert out["rmse"]["lo"] < out["rmse"]["value"] < out["rmse"]["hi"]


def test_binary_gets_a_per_class_table_and_keeps_its_metrics() -> None:
    y = np.array([0, 0, 1, 1, 1])
    s = np.array([0.1, 0.6, 0.7, 0.2, 0.9])
    out = metrics_with_ci(y, {"m": s}, task="classification", n_boot=10)["m"]
    assert out["confusion"] == {"tp": 2, "fp": 1, "tn": 1, "fn": 1}
    assert out["per_class"]["1"]["recall"] == pytest.approx(2 / 3)
    assert out["per_class"]["0"]["recall"] == pytest.approx(1 / 2)
    assert metric_value(["no", "no", "yes", "yes", "yes"], s, "recall",
                        classes=["no", "yes"]) == pytest.approx(2 / 3)


def test_metric_value_is_none_where_undefined_and_unknown_labels_widen() -> None:
    assert metric_value([1, 1, 1], [0.2, 0.5, 0.9], "roc_auc") is None
    p = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    # 'cat' is a class the model never saw: counted as a miss, not an error
    assert metric_value(["ant", "bee", "cat"], p, "accuracy", classes=["ant", "bee"]) == (
        pytest.approx(2 / 3))


def test_infer_and_resolve_task_from_label_and_metric() -> None:
    strings = pd.Series(np.repeat(CLASSES, 5), name="kind")
    counts = pd.Series(np.arange(30) % 5, name="n")
    values = pd.Series(np.linspace(0, 1, 30), name="delay")
    assert infer_task(strings) == "multiclass"
    assert infer_task(pd.Series(["a", "b", "a"])) == "binary"
    assert infer_task(values) == "regression"
    assert resolve_task(counts) == "multiclass"
    assert resolve_task(counts, metric="rmse") == "regression"  # the metric decides
    assert resolve_task(pd.Series([0, 1, 1, 0]), metric="macro_f1") == "multiclass"
    assert resolve_task(values, task="classification") == "binary"
    assert better_word("rmse") == "lower" and better_word("macro_f1") == "higher"


def test_bad_task_input_is_one_clear_line() -> None:
    strings = pd.Series(np.repeat(CLASSES, 5), name="kind")
    values = pd.Series(np.linspace(0, 1, 30), name="delay")
    with pytest.raises(UserInputError, match="metric 'rmse' needs a regression task, but the "
                       "label 'kind' holds strings") as info:
        resolve_task(strings, metric="rmse")
    assert "\n" not in str(info.value)
    with pytest.raises(UserInputError, match="'macro_f1' does not apply to a regression"):
        resolve_task(values, task="regression", metric="macro_f1")
    with pytest.raises(UserInputError, match="metric 'macro_f1' needs a multiclass task"):
        resolve_task(values, metric="macro_f1")
    with pytest.raises(UserInputError, match="task must be one of binary, multiclass, regression"
                       "; got 'ordinal'"):
        resolve_task(values, task="ordinal")
    with pytest.raises(NotTrainable, match="one class only \\(ant\\)"):
        label_classes(pd.Series(["ant"] * 4, name="kind"), "multiclass")
    with pytest.raises(NotTrainable, match="no rows of class\\(es\\) \\['dog'\\]"):
        label_classes(strings[strings != "dog"], "multiclass", classes=CLASSES)
    with pytest.raises(NotTrainable, match="A regression needs a numeric label"):
        label_classes(strings, "regression")
    with pytest.raises(NotTrainable, match="A binary model needs two classes"):
        label_classes(strings, "binary")
    assert label_classes(strings, "multiclass") == CLASSES
    assert label_classes(pd.Series([1.0, 0.0, 1.0]), "binary") == [0, 1]
