"""The gate guards the decision threshold (``min_recall``, ``costs``) and holds a
candidate whose metric the holdout cannot give (issues 23.5 and 18)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctloop.core.errors import UserInputError
from ctloop.models import GateConfig, judge, render_blessing
from ctloop.models.evaluation import evaluate_predictions
from ctloop.models.gate import GATE_KEYS


@pytest.fixture(scope="module")
def scored() -> tuple[pd.DataFrame, np.ndarray]:
    """A fifth of the rows are positive; the scores rank them well but stay below 0.5,
    as a gradient-boosted model's do when the positive class is rare."""
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=2000) < 0.2).astype(int)
    score = np.clip(0.1 + 0.25 * y + rng.normal(0, 0.08, 2000), 0.01, 0.49)
    return pd.DataFrame({"delayed": y}), score


def _report(frame: pd.DataFrame, models: dict[str, np.ndarray],
            costs: dict[str, float] | None = None) -> dict:
    return evaluate_predictions(frame, models, label="delayed", n_boot=20,
                                candidate="candidate", baseline="champion", costs=costs)


def test_a_candidate_that_never_decides_the_rare_class_is_refused_by_min_recall(
    scored: tuple[pd.DataFrame, np.ndarray],
) -> None:
    frame, score = scored
    report = _report(frame, {"candidate": score})  # decides at 0.5: never "delayed"
    gate = GateConfig.from_dict({"floors": {"roc_auc": 0.6}, "min_recall": 0.2})
    blessing = judge(report, gate, champion=None)
    assert report["models"]["candidate"]["overall"]["metrics"]["roc_auc"]["value"] > 0.9
    assert not blessing["blessed"] and not blessing["held"]
    assert blessing["failed"] == ["recall of every class >= 0.2"]
    rule = next(r for r in blessing["rules"] if r["kind"] == "recall")
    assert rule["status"] == "fail" and rule["threshold"] == 0.2
    low = [c for c in rule["classes"] if not c["passed"]]
    assert [(c["class"], c["recall"], c["predicted"]) for c in low] == [("1", 0.0, 0)]
    assert ("class 1: recall 0.000, precision undefined, F1 0.000 ("
            f"{int(frame['delayed'].sum())} rows, 0 predicted) at its decision threshold"
            ) in blessing["summary"]
    assert "[   fail] recall of every class >= 0.2" in render_blessing(blessing)
    # Without the rule, ROC AUC alone blesses it: the case the rule exists for.
    assert judge(report, GateConfig.from_dict({"floors": {"roc_auc": 0.6}}),
                 champion=None)["blessed"]


def test_costs_choose_each_models_threshold_and_the_rule_then_passes(
    scored: tuple[pd.DataFrame, np.ndarray],
) -> None:
    frame, score = scored
    gate = GateConfig.from_dict({"floors": {"roc_auc": 0.6}, "min_recall": 0.2,
                                 "costs": {"fn": 4, "fp": 1}})
    report = _report(frame, {"candidate": score}, costs=gate.costs)
    threshold = report["decision_thresholds"]["candidate"]
    assert 0.1 < threshold < 0.5
    blessing = judge(report, gate, champion=None)
    assert blessing["blessed"], blessing["summary"]
    rule = next(r for r in blessing["rules"] if r["kind"] == "recall")
    assert rule["status"] == "pass" and min(c["recall"] for c in rule["classes"]) >= 0.2
    assert "expected_cost" in report["models"]["candidate"]["overall"]["metrics"]


def test_one_rare_class_row_short_of_the_rule_is_named_with_its_numbers() -> None:
    y = np.array([0] * 90 + [1] * 10)
    frame = pd.DataFrame({"delayed": y})
    score = np.where(np.arange(100) >= 99, 0.9, 0.2)  # one of ten positives decided
    blessing = judge(_report(frame, {"candidate": score}),
                     GateConfig.from_dict({"min_recall": 0.2}), champion=None)
    assert not blessing["blessed"]
    assert "class 1: recall 0.100, precision 1.000, F1 0.182 (10 rows, 1 predicted)" in (
        blessing["summary"])


def test_min_recall_is_skipped_for_regression() -> None:
    frame = pd.DataFrame({"delayed": np.linspace(0, 1, 50)})
    report = evaluate_predictions(frame, {"candidate": np.linspace(0, 1, 50)},
                                  label="delayed", task="regression", n_boot=10)
    blessing = judge(report, GateConfig.from_dict({"min_recall": 0.5}))
    assert blessing["blessed"] and blessing["rules"][0]["status"] == "skipped"


def test_a_one_class_holdout_holds_the_candidate_and_says_why() -> None:
    frame = pd.DataFrame({"delayed": np.zeros(40, dtype=int)})
    scores = {"candidate": np.linspace(0.1, 0.9, 40), "champion": np.full(40, 0.3)}
    report = _report(frame, scores)
    for gate, champion in ((GateConfig.from_dict({"floors": {"roc_auc": 0.6}}), None),
                           (GateConfig.from_dict({"changes": {"roc_auc": 0.001}}), None),
                           (GateConfig.from_dict({"floors": {"roc_auc": 0.6},
                                                  "changes": {"roc_auc": 0.001}}),
                            "champion")):
        blessing = judge(report, gate, champion=champion)
        assert not blessing["blessed"] and blessing["held"], blessing
        assert blessing["undefined"] == ["roc_auc"] and blessing["failed"] == []
        assert blessing["summary"].startswith(
            "held: roc_auc is undefined on this holdout: one class (only class '0' of 2, "
            "40 rows; it needs two to rank)")
        assert "None" not in blessing["summary"]
        judged = [r for r in blessing["rules"] if r["status"] != "skipped"]
        assert all(r["status"] == "undefined" and r["candidate"] is None and not r["passed"]
                   for r in judged)
        assert all("None" not in r["detail"] for r in blessing["rules"])
        assert render_blessing(blessing).startswith("HELD")


def test_gate_keys_round_trip_and_bad_values_are_one_line() -> None:
    gate = GateConfig.from_dict({"floors": {"roc_auc": 0.6}, "min_recall": 0.25,
                                 "costs": {"fn": 4, "fp": 1}})
    assert GateConfig.from_dict(gate.to_dict()) == gate
    assert gate.to_dict()["costs"] == {"fn": 4.0, "fp": 1.0, "tp": 0.0, "tn": 0.0}
    assert set(GATE_KEYS) >= {"min_recall", "costs"}
    with pytest.raises(UserInputError, match=r"min_recall must be a share in \(0, 1\]. Got 0.0"):
        GateConfig.from_dict({"min_recall": 0})
    with pytest.raises(UserInputError, match=r"min_recall must be a number\. Got 'high'"):
        GateConfig.from_dict({"min_recall": "high"})
    with pytest.raises(UserInputError, match="costs take fn, fp, tp and tn only"):
        GateConfig.from_dict({"costs": {"fn": 4, "false_alarm": 1}})
    with pytest.raises(UserInputError, match="use floors, changes, slices, keep_classes, "
                                             "min_recall, costs, serving"):
        GateConfig.from_dict({"min_recal": 0.2})
