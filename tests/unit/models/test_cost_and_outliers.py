"""Cost-aware thresholds, calibration and outlier detectors stored with a real model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctloop.core.errors import UserInputError
from ctloop.models import GateConfig, fit_model, judge, load_model
from ctloop.models.calibration import calibration_of, finalize_model, fit_calibration
from ctloop.models.evaluation import evaluate_models, evaluate_predictions
from ctloop.models.metrics import Costs, metric_matrix, optimal_threshold
from ctloop.models.outliers import OUTLIER_SCORE_CUTOFF, fit_outlier_detector

FEATURES = ["x1", "x2", "x3", "color"]


def _data(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, (n, 3))
    color = rng.choice(["red", "green", "blue"], n)
    logit = 1.2 * x[:, 0] - 0.8 * x[:, 1] + (color == "red") - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "color": color, "y": y})


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    train, holdout = _data(4000, 0), _data(3000, 1)
    path = tmp_path_factory.mktemp("model") / "m"
    fit_model(
        train,
        label="y",
        features=FEATURES,
        algorithm="lightgbm",
        params={"n_estimators": 60, "verbose": -1},
    ).save(path)
    settings = finalize_model(
        path, holdout, label="y", costs={"fn": 5, "fp": 1}, training=train[FEATURES]
    )
    return path, settings, holdout


def test_cost_threshold_differs_from_half_and_lowers_expected_cost(saved):
    path, settings, _ = saved
    model = load_model(path)
    threshold = model.decision_threshold
    assert threshold == settings["decision_threshold"] and abs(threshold - 0.5) > 0.1
    assert threshold < 0.5  # a missed positive costs five times a false alarm
    fresh = _data(3000, 2)  # rows the threshold was not chosen on
    y, score = fresh["y"].to_numpy(), model.predict(fresh)
    costs = Costs(fn=5, fp=1)
    ones = np.ones((1, len(y)))
    at_half = metric_matrix(ones, y, score, task="classification", threshold=0.5, costs=costs)
    chosen = metric_matrix(ones, y, score, task="classification", threshold=threshold, costs=costs)
    assert chosen["expected_cost"][0] < 0.85 * at_half["expected_cost"][0]


def test_evaluation_and_gate_compare_expected_cost(saved):
    path, _, holdout = saved
    model = load_model(path)
    report = evaluate_models(
        {"candidate": model, "champion": model},
        holdout,
        label="y",
        costs={"fn": 5, "fp": 1},
        n_boot=20,
    )
    assert report["decision_thresholds"]["champion"] == model.decision_threshold
    metrics = report["models"]["candidate"]["overall"]["metrics"]
    assert metrics["expected_cost"]["lo"] <= metrics["expected_cost"]["value"]
    verdict = judge(report, GateConfig.from_dict({"changes": {"expected_cost": 0.0}}))
    assert verdict["blessed"], verdict["summary"]
    plain = evaluate_predictions(holdout, {"candidate": model.predict(holdout)}, label="y")
    with pytest.raises(UserInputError, match="without costs"):
        judge(plain, GateConfig.from_dict({"floors": {"expected_cost": 1.0}}))


def test_optimal_threshold_matches_bayes_rule_on_calibrated_scores():
    rng = np.random.default_rng(0)
    score = rng.random(20_000)
    y = (rng.random(20_000) < score).astype(float)
    threshold, _ = optimal_threshold(y, score, Costs(fn=5, fp=1))
    assert threshold == pytest.approx(1 / 6, abs=0.03)


@pytest.mark.parametrize("bad", [{"fn": "five"}, {"fn": 1, "fp": 1, "zz": 2}, {"fn": 0, "tp": 1}])
def test_bad_costs_are_clear_errors(bad):
    with pytest.raises(UserInputError, match="cost"):
        Costs.from_dict(bad)


def test_calibration_is_stored_and_improves_probabilities(saved):
    path, _, holdout = saved
    calibration = calibration_of(load_model(path).manifest)
    assert calibration is not None and calibration.n == len(holdout)
    rng = np.random.default_rng(3)
    true_p = rng.random(5000)
    y = (rng.random(5000) < true_p).astype(float)
    skewed = true_p**3  # an overconfident-looking, uncalibrated score
    fitted = fit_calibration(y, skewed)
    assert np.mean(np.abs(fitted.apply(skewed) - true_p)) < 0.05
    assert np.mean(np.abs(skewed - true_p)) > 0.15
    with pytest.raises(UserInputError, match="at least 200"):
        fit_calibration(y[:50], skewed[:50])


def test_outlier_scores_flag_shifted_rows_and_unseen_categories(saved):
    path, _, _ = saved
    model = load_model(path)
    normal = model.outlier_scores(_data(2000, 5)[FEATURES])
    shifted = model.outlier_scores(_data(2000, 6, shift=3.0)[FEATURES])
    assert normal is not None and shifted is not None
    assert np.mean(normal >= OUTLIER_SCORE_CUTOFF) < 0.03
    assert np.mean(shifted >= OUTLIER_SCORE_CUTOFF) > 0.5
    odd = _data(10, 7)[FEATURES].assign(color="purple")
    assert np.all(model.outlier_scores(odd) == 1.0)
    with pytest.raises(UserInputError, match="at least 20 rows"):
        fit_outlier_detector(_data(5, 0)[FEATURES])


def test_a_model_without_detector_scores_nothing(tmp_path):
    train = _data(500, 0)
    fit_model(
        train,
        label="y",
        features=FEATURES,
        algorithm="lightgbm",
        params={"n_estimators": 5, "verbose": -1},
    ).save(tmp_path / "m")
    assert load_model(tmp_path / "m").outlier_scores(train[FEATURES]) is None


@pytest.mark.parametrize(("rows", "columns"), [(300, 2), (1200, 1), (1200, 3), (5000, 12)])
def test_the_detector_fit_is_scikit_learns_min_cov_det_bitwise(rows: int, columns: int) -> None:
    """The detector computes FastMCD's covariances with ``np.cov`` (skipping
    scikit-learn's per-call validation); its location and precision are exactly those of
    scikit-learn's own ``MinCovDet`` on the same scaled data, on both of FastMCD's paths
    (up to 500 rows, and subsets beyond), one column and many."""
    from sklearn.covariance import MinCovDet

    from ctloop.examples.flights.data import flights

    numeric = ["dep_delay", "arr_delay", "distance", "hour", "minute", "air_time",
               "dep_time", "arr_time", "sched_dep_time", "sched_arr_time", "day", "flight"]
    frame = flights([3]).head(rows)[numeric[:columns]]
    detector = fit_outlier_detector(frame, seed=7)
    x = frame.to_numpy(dtype=np.float64)
    center, scale = np.asarray(detector.center), np.asarray(detector.scale)
    z = (np.where(np.isfinite(x), x, center) - center) / scale
    reference = MinCovDet(random_state=7, support_fraction=0.75).fit(z)
    assert detector.location == tuple(map(float, reference.location_))
    assert detector.precision == tuple(tuple(map(float, r)) for r in reference.get_precision())
