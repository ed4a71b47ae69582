"""Drift measures from sketches against SciPy/NumPy on the raw values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from ctloop.core.errors import UserInputError
from ctloop.data.drift import compute_drift
from ctloop.data.stats import compute_statistics


def naive_psi(ref: np.ndarray, cur: np.ndarray) -> float:
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    p = np.clip(np.histogram(ref, bins)[0] / len(ref), 1e-4, None)
    q = np.clip(np.histogram(cur, bins)[0] / len(cur), 1e-4, None)
    return float(np.sum((q - p) * np.log(q / p)))


@pytest.mark.parametrize(("shift", "scale"), [(0.0, 2.0), (0.3, 2.5), (1.0, 2.0)])
def test_numeric_measures_match_scipy(shift, scale):
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(0, 2, 20_000), rng.normal(shift, scale, 15_000)
    report = compute_drift(pd.DataFrame({"v": ref}), pd.DataFrame({"v": cur}))
    m = report["v"].measures
    # Sketch-based measures: within a few KLL rank errors of the exact values.
    assert m["ks"] == pytest.approx(sps.ks_2samp(ref, cur).statistic, abs=0.035)
    w = sps.wasserstein_distance(ref, cur)
    assert m["wasserstein_norm"] == pytest.approx(w / ref.std(ddof=1), rel=0.1, abs=0.03)
    assert m["psi"] == pytest.approx(naive_psi(ref, cur), rel=0.2, abs=0.02)
    assert report["v"].method == "wasserstein"
    assert report["v"].drifted == (shift > 0)


def test_categorical_measures_match_scipy():
    rng = np.random.default_rng(2)
    ref = rng.choice(list("abcd"), 5000, p=[0.4, 0.3, 0.2, 0.1])
    cur = rng.choice(list("abce"), 4000, p=[0.25, 0.25, 0.25, 0.25])
    report = compute_drift(pd.DataFrame({"c": ref}), pd.DataFrame({"c": cur}))
    labels = sorted(set(ref) | set(cur))
    table = np.array([[np.sum(ref == v) for v in labels], [np.sum(cur == v) for v in labels]])
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    m = report["c"].measures
    chi2, pvalue, _, _ = sps.chi2_contingency(table, correction=False)
    assert m["chisquare"] == pytest.approx(chi2)
    assert m["chisquare_pvalue"] == pytest.approx(pvalue, abs=1e-12)
    assert m["jensenshannon"] == pytest.approx(jensenshannon(p, q, base=2))
    assert m["linf"] == pytest.approx(np.max(np.abs(p - q)))
    assert report["c"].drifted and report.dataset_drifted


def test_small_samples_use_statistical_tests():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"v": rng.normal(0, 1, 300), "c": rng.choice(list("ab"), 300)})
    cur = pd.DataFrame({"v": rng.normal(0, 1, 200), "c": rng.choice(list("ab"), 200)})
    report = compute_drift(ref, cur)
    assert report["v"].method == "ks" and report["c"].method == "chisquare"
    exact = sps.ks_2samp(ref["v"], cur["v"], method="asymp")
    assert report["v"].measures["ks"] == pytest.approx(exact.statistic, abs=0.035)
    assert report["v"].score == pytest.approx(sps.kstwo.sf(report["v"].measures["ks"], 120))
    assert not report["v"].drifted and not report["c"].drifted


def test_per_feature_method_and_threshold():
    rng = np.random.default_rng(4)
    ref, cur = (
        pd.DataFrame({"v": rng.normal(0, 1, 5000)}),
        pd.DataFrame({"v": rng.normal(0.05, 1, 5000)}),
    )
    loose = compute_drift(ref, cur)
    strict = compute_drift(ref, cur, config={"v": {"method": "psi", "threshold": 0.0001}})
    assert not loose["v"].drifted
    assert strict["v"].method == "psi" and strict["v"].drifted
    with pytest.raises(UserInputError, match="drift method"):
        compute_drift(ref, cur, config={"v": {"method": "chisquare"}})
    with pytest.raises(UserInputError, match="unknown features"):
        compute_drift(ref, cur, config={"w": {"threshold": 0.1}})


def test_drift_from_saved_statistics_equals_drift_from_data(tmp_path):
    rng = np.random.default_rng(5)
    ref, cur = (
        pd.DataFrame({"v": rng.normal(0, 1, 3000)}),
        pd.DataFrame({"v": rng.normal(1, 1, 3000)}),
    )
    ref_stats = compute_statistics(ref)
    path = ref_stats.save(tmp_path / "ref.json")
    from ctloop.data.stats import DatasetStatistics

    cur_stats = compute_statistics(cur)  # KLL compaction is randomised: compute once
    a = compute_drift(DatasetStatistics.load(path), cur_stats)
    b = compute_drift(ref_stats, cur_stats)
    assert a["v"].measures == b["v"].measures


def test_type_change_is_reported_not_tested():
    report = compute_drift(pd.DataFrame({"v": [1.0, 2.0]}), pd.DataFrame({"v": ["a", "b"]}))
    assert report["v"].score is None and "type changed" in report["v"].note
    assert not report.dataset_drifted


def test_report_json_is_strict_json():
    import json

    report = compute_drift(
        pd.DataFrame({"v": [1.0, 2.0], "t": pd.to_datetime(["2013-01-01", "2013-01-02"])}),
        pd.DataFrame({"v": ["a", "b"], "t": pd.to_datetime(["2013-02-01", "2013-02-02"])}),
    )
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert json.loads(text)["n_tested"] == 0


def test_method_none_leaves_a_feature_out() -> None:
    import pandas as pd

    from ctloop.data.drift import compute_drift

    ref = pd.DataFrame({"month": [1] * 500, "x": range(500)})
    cur = pd.DataFrame({"month": [7] * 500, "x": range(500)})
    report = compute_drift(ref, cur, config={"month": {"method": "none"}})
    assert [f.column for f in report.drifted] == []
    month = next(f for f in report.features if f.column == "month")
    assert month.score is None and "not tested" in month.note
    assert next(f.drifted for f in compute_drift(ref, cur).features if f.column == "month")


def test_empty_side_is_a_clear_error() -> None:
    import pandas as pd

    from ctloop.core.errors import UserInputError
    from ctloop.data.drift import compute_drift

    full = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(UserInputError, match=r"reference data .* has no rows"):
        compute_drift(full.iloc[:0], full)
    with pytest.raises(UserInputError, match=r"current data .* has no rows"):
        compute_drift(full, full.iloc[:0])
