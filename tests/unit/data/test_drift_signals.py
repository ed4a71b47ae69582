"""Drift verdicts that repeat, count only features, weigh importance and see broken columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctloop.core.errors import UserInputError
from ctloop.data.drift import compute_drift
from ctloop.data.schema import infer_schema
from ctloop.data.skew import validate_statistics
from ctloop.data.stats import compute_statistics
from ctloop.examples.flights.data import load_table


def _month(month: int) -> pd.DataFrame:
    flights = load_table("flights")
    return flights[flights["month"] == month].reset_index(drop=True)


def test_same_inputs_give_the_same_verdict_on_flights():
    jan, feb = _month(1), _month(2)
    reports = [compute_drift(compute_statistics(jan), compute_statistics(feb)) for _ in range(4)]
    first = reports[0].to_dict()
    assert all(r.to_dict() == first for r in reports[1:])
    assert 0 < len(reports[0].drifted) < len(reports[0].tested)


def _shifted(n: int = 20_000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(shift: float, ids: np.ndarray) -> pd.DataFrame:
        data = {f"x{i}": rng.normal(shift if i < 2 else 0.0, 1.0, n) for i in range(9)}
        return pd.DataFrame({"id": ids, **data, "label": rng.integers(0, 2, n) + shift})

    return frame(0.0, np.arange(n)), frame(1.0, np.arange(n, 2 * n))


def test_ids_and_labels_are_reported_but_left_out_of_the_share():
    ref, cur = _shifted()
    plain = compute_drift(ref, cur, drift_share=0.3)
    assert {"id", "label"} <= {f.column for f in plain.drifted}  # ids and labels "drift"
    report = compute_drift(ref, cur, exclude=["id", "label"], drift_share=0.3)
    assert [f.column for f in report.drifted] == ["x0", "x1"]
    assert report.share_drifted == pytest.approx(2 / 9)
    assert report["id"].drifted and not report["id"].in_share
    assert report.summary()["excluded"] == ["id", "label"]


def test_the_share_can_be_weighted_by_feature_importance():
    ref, cur = _shifted()
    features = [f"x{i}" for i in range(9)]
    importance = {name: (4.0 if name in ("x0", "x1") else 0.5) for name in features}
    weighted = compute_drift(ref, cur, columns=features, weights=importance)
    assert weighted.share_drifted == pytest.approx(8 / (8 + 3.5))
    assert weighted.dataset_drifted and weighted.summary()["weighted"]
    unweighted = compute_drift(ref, cur, columns=features)
    assert not unweighted.dataset_drifted  # 2 of 9 unweighted
    with pytest.raises(UserInputError, match="finite and >= 0"):
        compute_drift(ref, cur, columns=features, weights={"x0": -1.0})


def test_schema_roles_and_ignored_columns_leave_the_share():
    ref, cur = _shifted()
    schema = infer_schema(compute_statistics(ref), label="label")
    assert schema.columns["id"].role == "id" and schema.columns["label"].role == "label"
    schema.columns["x8"].severity = {"drift": "ignore"}
    result = validate_statistics(compute_statistics(cur), schema, reference=compute_statistics(ref))
    assert result.drift is not None
    assert {f.column for f in result.drift.tested} == {f"x{i}" for i in range(8)}
    assert result.drift.share_drifted == pytest.approx(2 / 8)


def test_a_column_turned_all_infinite_is_drift_not_silence():
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"v": rng.normal(size=2000), "w": rng.normal(size=2000)})
    cur = ref.assign(v=np.inf)
    report = compute_drift(ref, cur)
    assert report["v"].drifted and "infinite" in report["v"].note
    assert report.share_drifted == pytest.approx(0.5)
    schema = infer_schema(compute_statistics(ref))
    result = validate_statistics(compute_statistics(cur), schema, reference=compute_statistics(ref))
    assert "drift" in result.kinds("v") and "non_finite" in result.kinds("v")
