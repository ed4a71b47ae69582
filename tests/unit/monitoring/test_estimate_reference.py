"""The vectorised estimate against straightforward references on random windows.

The point estimates are pinned to row-by-row and pair-by-pair sums (to 1e-9); the
band's normal draws to exact Bernoulli label draws (quantiles within 4.5%
of the band's width, far below the Monte Carlo noise of a 200-draw band).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from ctloop.models.calibration import Calibration
from ctloop.models.metrics import Costs
from ctloop.monitoring import estimate as est

SETTINGS = settings(max_examples=80, deadline=None)
COSTS = Costs(fn=3.0, fp=1.0, tp=0.5, tn=0.0)


@st.composite
def windows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Scores with many ties (a few distinct levels) and probabilities in [0, 1]."""
    n = draw(st.integers(1, 60))
    levels = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, n) / max(levels - 1, 1)
    p = rng.random(n)
    p[rng.random(n) < 0.1] = 0.0  # certain rows, as a clipped calibration gives
    p[rng.random(n) < 0.1] = 1.0
    return scores, p


def reference_auc(p: np.ndarray, score: np.ndarray) -> float:
    """E[positive outranks negative] over every ordered pair of rows, a row with itself included."""
    num = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if score[i] > score[j]:
                num += p[i] * (1 - p[j])
            elif score[i] == score[j]:
                num += 0.5 * p[i] * (1 - p[j])
    den = p.sum() * (1 - p).sum()
    return num / den if den > 0 else float("nan")


def reference_point(
    p: np.ndarray, score: np.ndarray, threshold: float, costs: Costs
) -> dict[str, float]:
    """The expected confusion matrix, row by row, and the metrics read from it."""
    tp = fp = fn = tn = 0.0
    for pi, si in zip(p, score, strict=True):
        if si >= threshold:
            tp, fp = tp + pi, fp + 1 - pi
        else:
            fn, tn = fn + pi, tn + 1 - pi
    n = len(p)
    return {
        "roc_auc": reference_auc(p, score),
        "accuracy": (tp + tn) / n,
        "precision": tp / (tp + fp) if tp + fp > 0 else 0.0,
        "recall": tp / (tp + fn) if tp + fn > 0 else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0,
        "expected_cost": (costs.tp * tp + costs.fp * fp + costs.fn * fn + costs.tn * tn) / n,
    }


@SETTINGS
@given(windows())
def test_expected_auc_is_the_pairwise_expectation(window):
    score, p = window
    order, starts = est._ordered(score)
    got = est._expected_auc(p[order], starts)
    want = reference_auc(p, score)
    assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, abs=1e-9)


@SETTINGS
@given(windows())
def test_midranks_are_scipys_average_ranks(window):
    score, _ = window
    order, starts = est._ordered(score)
    np.testing.assert_array_equal(est._midranks(order, starts), rankdata(score))


@SETTINGS
@given(windows(), st.sampled_from([0.0, 0.3, 0.5, 1.0]), st.integers(0, 2**32 - 1))
def test_point_estimates_match_the_row_by_row_reference(window, threshold, seed):
    score, _ = window
    knots = np.sort(np.random.default_rng(seed).random((2, 5)), axis=1)  # a monotone map
    calibration = Calibration(x=tuple(knots[0]), y=tuple(knots[1]))
    for cal, p in ((None, score), (calibration, np.interp(score, knots[0], knots[1]))):
        got = est.estimate_performance(
            score, calibration=cal, threshold=threshold, costs=COSTS, n_sim=0
        )
        for name, value in reference_point(p, score, threshold, COSTS).items():
            if np.isnan(value):
                assert got[name].value is None, name
            else:
                assert got[name].value == pytest.approx(value, abs=1e-9), name


def _window(n: int, seed: int, spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw scores, their probabilities (a logistic of a normal) and 0.5-threshold decisions."""
    rng = np.random.default_rng(seed)
    raw = 1 / (1 + np.exp(-rng.normal(0.0, spread, n)))
    raw = np.round(raw, 3)  # ties, as tree models give
    p = np.clip(raw + rng.normal(0, 0.05, n), 0, 1)  # not the score: calibration moved it
    return raw, p, (raw >= 0.5).astype(np.float64)


@pytest.mark.parametrize(("n", "seed", "spread"), [(800, 1, 1.5), (3000, 2, 2.5), (6000, 3, 1.0)])
def test_normal_draws_give_the_band_of_exact_label_draws(n, seed, spread):
    raw, p, decided = _window(n, seed, spread)
    w = p * (1 - p)
    assert min(w @ decided, w @ (1 - decided)) >= est.NORMAL_MIN_VARIANCE  # the normal path
    order, starts = est._ordered(raw)
    ranks = est._midranks(order, starts)
    args = (n, float(decided.sum()), COSTS)
    # enough draws that both sides' own Monte Carlo noise is ~1% of the width
    exact = est._metrics_of_draws(*est._simulate_bernoulli(p, decided, ranks, 10_000, 7), *args)
    normal = est._metrics_of_draws(*est._simulate_normal(p, decided, ranks, 50_000, 8), *args)
    for name in exact:
        q_exact = np.nanquantile(exact[name], [0.025, 0.5, 0.975])
        q_normal = np.nanquantile(normal[name], [0.025, 0.5, 0.975])
        width = q_exact[2] - q_exact[0]
        assert np.abs(q_normal - q_exact).max() < 0.045 * width, (name, q_exact, q_normal)


def test_normal_draws_stay_inside_what_labels_can_give():
    raw, p, decided = _window(2000, 4, 2.0)
    order, starts = est._ordered(raw)
    tp, n1, rank_sum = est._simulate_normal(p, decided, est._midranks(order, starts), 5000, 0)
    assert (tp >= 0).all() and (tp <= decided.sum()).all()
    assert (n1 - tp >= 0).all() and (n1 - tp <= len(p) - decided.sum()).all()
    drawn = est._metrics_of_draws(tp, n1, rank_sum, len(p), float(decided.sum()), COSTS)
    for name in ("roc_auc", "accuracy", "precision", "recall", "f1"):
        assert (drawn[name] >= 0).all() and (drawn[name] <= 1).all(), name


@pytest.mark.parametrize("confident", [False, True])
def test_windows_with_little_label_variance_draw_every_label(confident):
    """A small window, or a large one whose probabilities are nearly all 0 or 1, keeps
    exact Bernoulli draws: its counts are too discrete for a normal law."""
    n = 20_000 if confident else 150
    raw, p, decided = _window(n, 5, 12.0 if confident else 1.0)
    if confident:
        p = np.where(raw >= 0.5, 0.999, 0.001)
    w = p * (1 - p)
    assert min(w @ decided, w @ (1 - decided)) < est.NORMAL_MIN_VARIANCE
    order, starts = est._ordered(raw)
    ranks = est._midranks(order, starts)
    got = est._simulate(p, decided, ranks, COSTS, 50, 3)
    exact = est._metrics_of_draws(
        *est._simulate_bernoulli(p, decided, ranks, 50, 3), n, float(decided.sum()), COSTS
    )
    for name, values in exact.items():
        np.testing.assert_array_equal(got[name], values)
