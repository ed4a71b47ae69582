"""Metrics and bootstrap intervals against scikit-learn and a naive resampling loop."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from ctloop.core.errors import UserInputError
from ctloop.models.metrics import bootstrap_weights, metric_matrix, metrics_with_ci


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 3000)
    # Rounded scores create ties, which the AUC must count as one half.
    score = np.round(np.clip(0.3 * y + rng.normal(0.35, 0.2, 3000), 0, 1), 2)
    return y, score


def test_point_metrics_match_sklearn(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = scored
    got = metric_matrix(np.ones((1, len(y))), y, s, task="classification", threshold=0.4)
    pred = (s >= 0.4).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert got["roc_auc"][0] == pytest.approx(skm.roc_auc_score(y, s))
    assert got["log_loss"][0] == pytest.approx(skm.log_loss(y, s))
    assert got["accuracy"][0] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["precision"][0] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"][0] == pytest.approx(skm.recall_score(y, pred))
    assert got["f1"][0] == pytest.approx(skm.f1_score(y, pred))
    assert (got["tp"][0], got["fp"][0], got["tn"][0], got["fn"][0]) == (tp, fp, tn, fn)


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(10, 3, 500)
    p = y + rng.normal(0, 1, 500)
    got = metric_matrix(np.ones((1, 500)), y, p, task="regression")
    assert got["rmse"][0] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert got["mae"][0] == pytest.approx(skm.mean_absolute_error(y, p))
    assert got["r2"][0] == pytest.approx(skm.r2_score(y, p))


def test_weighted_rows_equal_metrics_of_resamples(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = scored
    w = bootstrap_weights(len(y), 5, seed=7)
    assert (w.sum(axis=1) == len(y)).all()
    got = metric_matrix(w, y, s, task="classification")
    for b in range(5):
        idx = np.repeat(np.arange(len(y)), w[b].astype(int))
        assert got["roc_auc"][b] == pytest.approx(skm.roc_auc_score(y[idx], s[idx]))
        assert got["log_loss"][b] == pytest.approx(skm.log_loss(y[idx], s[idx]))
        assert got["f1"][b] == pytest.approx(skm.f1_score(y[idx], s[idx] >= 0.5))


def test_interval_brackets_value_and_is_reproducible(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = scored
    a = metrics_with_ci(y, {"m": s}, task="classification", n_boot=300, seed=1)
    b = metrics_with_ci(y, {"m": s}, task="classification", n_boot=300, seed=1)
    auc = a["m"]["metrics"]["roc_auc"]
    assert auc["lo"] < auc["value"] < auc["hi"]
    assert auc["hi"] - auc["lo"] < 0.06
    assert a["m"]["metrics"] == b["m"]["metrics"]
    # The CI is the percentile interval of the (naively recomputed) resample metrics.
    w = bootstrap_weights(len(y), 300, seed=1)
    naive = [skm.roc_auc_score(np.repeat(y, r.astype(int)), np.repeat(s, r.astype(int))) for r in w]
    assert auc["lo"] == pytest.approx(np.quantile(naive, 0.025))


def test_single_class_gives_undefined_auc() -> None:
    got = metrics_with_ci(np.ones(10), {"m": np.full(10, 0.7)}, task="classification", n_boot=20)
    assert got["m"]["metrics"]["roc_auc"]["value"] is None
    assert got["m"]["metrics"]["accuracy"]["value"] == 1.0


def test_bad_labels_are_refused() -> None:
    with pytest.raises(UserInputError, match="0/1"):
        metric_matrix(np.ones((1, 3)), [0, 2, 1], [0.1, 0.2, 0.3], task="classification")
    with pytest.raises(UserInputError, match="equal length"):
        metric_matrix(np.ones((1, 3)), [0, 1, 1], [0.1, 0.2], task="classification")
