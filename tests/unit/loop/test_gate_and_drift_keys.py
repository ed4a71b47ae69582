"""The loop keys that guard the decision threshold and calibrate drift:
``gate.min_recall``, ``gate.costs`` and ``drift.thresholds`` (issue 23.5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.core.errors import ConfigError
from ctloop.loop.declaration import parse_loop

BASE = {"model": "m", "data": "landing/*.parquet", "event_time": "ts", "label": "y"}


def test_threshold_guards_reach_the_gate_and_drift_thresholds_the_spec(tmp_path: Path) -> None:
    spec = parse_loop("churn", {**BASE, "gate": {"floor": 0.6, "min_recall": 0.2,
                                                 "costs": {"fn": 4, "fp": 1}},
                                "drift": {"thresholds": "stationary"}}, root=tmp_path)
    assert spec.drift.thresholds == "stationary"
    gate = spec.gate.to_gate("roc_auc")
    assert gate["min_recall"] == 0.2
    assert gate["costs"] == {"fn": 4.0, "fp": 1.0, "tp": 0.0, "tn": 0.0}
    assert gate["floors"] == {"roc_auc": 0.6}
    plain = parse_loop("churn", BASE, root=tmp_path)
    assert plain.drift.thresholds == "fixed"
    assert "min_recall" not in plain.gate.to_gate("roc_auc")
    assert "costs" not in plain.gate.to_gate("roc_auc")


@pytest.mark.parametrize(("table", "message"), [
    ({"gate": {"min_recall": 1.5}},
     "Loop 'churn': key 'gate': The gate's min_recall must be a share in (0, 1]. Got 1.5."),
    ({"gate": {"costs": {"fn": 4, "fq": 1}}},
     "Loop 'churn': key 'gate': costs take fn, fp, tp and tn only."),
    ({"gate": {"min_recal": 0.2}}, "Loop 'churn': gate: unknown key 'min_recal'; did you mean "
                                   "'min_recall'?"),
    ({"drift": {"thresholds": "seasonal"}},
     "Loop 'churn': key 'drift.thresholds' must be \"fixed\" or \"stationary\". Got "
     "'seasonal'."),
])
def test_bad_values_name_the_loop_and_the_key(tmp_path: Path, table: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_loop("churn", {**BASE, **table}, root=tmp_path)
    assert str(caught.value.message).startswith(message), caught.value.message
