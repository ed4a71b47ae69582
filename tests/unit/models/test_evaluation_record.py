"""Evaluation.from_json reads what the push step stores: the gate's real report and verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctloop.models.evaluation import evaluate_predictions
from ctloop.models.evaluation_record import Evaluation
from ctloop.models.gate import GateConfig, judge


def _properties(rows: int) -> dict[str, object]:
    """A version's properties as ``push`` writes them, from a real evaluation."""
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"label": np.arange(rows) % 2,
                         "plan": np.array(["a", "b", "c"])[np.arange(rows) % 3]})
    truth = data["label"].to_numpy(dtype=float)
    scores = {"candidate": np.clip(truth * 0.6 + rng.uniform(0, 0.4, rows), 0, 1),
              "champion": rng.uniform(0, 1, rows)}
    report = evaluate_predictions(data, scores, label="label", task="binary",
                                  slice_columns=["plan"], n_boot=20, candidate="candidate",
                                  baseline="champion")
    verdict = judge(report, GateConfig.from_dict({"changes": {"roc_auc": 0.001}}))
    candidate = report["models"]["candidate"]
    return {"evaluation": {"overall": candidate["overall"], "slices": candidate["slices"],
                           "label": report["label"], "n_rows": report["n_rows"]},
            "blessing": verdict}


def test_many_rows_read_as_metrics_with_intervals_slices_and_rules() -> None:
    properties = _properties(200)
    evaluation = Evaluation.from_json(properties)
    stored = properties["evaluation"]["overall"]["metrics"]  # type: ignore[index]  # a JSON dict
    assert evaluation.metric("roc_auc") == stored["roc_auc"]["value"]
    interval = evaluation.overall.metrics["roc_auc"]
    assert interval.lo is not None and interval.hi is not None
    assert interval.lo <= interval.value <= interval.hi  # type: ignore[operator]  # all set here
    assert set(evaluation.slices["plan"]) == {"a", "b", "c"}
    assert evaluation.label == "label" and evaluation.n_rows == 200
    assert evaluation.blessed is True
    assert [(r.kind, r.metric, r.status) for r in evaluation.rules] == [
        ("change", "roc_auc", "pass")]


def test_one_and_two_rows_read_without_error() -> None:
    for rows in (1, 2):
        evaluation = Evaluation.from_json(_properties(rows))
        assert evaluation.n_rows == rows
        assert set(evaluation.overall.metrics) >= {"roc_auc"}


def test_a_version_without_an_evaluation_has_no_metric() -> None:
    properties: object
    for properties in (None, {}, {"evaluation": None}, {"evaluation": {"overall": {}}},
                       {"evaluation": {"overall": {"metrics": {"roc_auc": {"value": "x"}}}}}):
        evaluation = Evaluation.from_json(properties)
        assert evaluation.metric("roc_auc") is None
        assert evaluation.blessed is None and evaluation.rules == ()
