"""A candidate whose metric is undefined on its holdout (one class there) is held, not
blessed and not failed on ``None``; a bootstrap held so waits for a span it can judge,
saying why (issue 18, the gate)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ctloop.loop.sample import write_sample_spans
from ctloop.testing.cli import cli
from ctloop.testing.loops import churn_loop

pytestmark = pytest.mark.slow


def test_a_one_class_holdout_holds_the_bootstrap_until_a_span_can_be_judged(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    write_sample_spans(ctloop_home / "landing", spans=3, rows=300, change_at=None,
                       shift_at=None)
    (ctloop_home / "ctloop.toml").write_text(churn_loop(
        'retrain_on = ["new_span"]', 'window = "2 spans"',
        'train = { flavor = "lightgbm", params = { n_estimators = 20 } }',
        "gate = { floor = 0.5 }"))
    first = ctloop_home / "landing" / "week-00.parquet"
    frame = pd.read_parquet(first).sort_values("ts")
    frame.loc[frame.index[-100:], "churned"] = 0  # its holdout (the last quarter): one class
    frame.to_parquet(first, index=False)
    code, out, err = cli(capsys, "loop", "replay", "churn", "--json")
    assert code == 0, err
    spans = {s["span"]: s for s in json.loads(out)["spans"]}
    held = spans["week-00"]
    assert held["bootstrap"] and held["promoted"] is None
    assert held["gate"]["blessed"] is False and held["gate"]["held"] is True
    assert held["gate"]["failed"] == []  # no floor "failed" against None
    reason = held["gate"]["reason"]
    assert reason.startswith("held: roc_auc is undefined on this holdout: one class (only "
                             "class '0' of 2"), reason
    assert "None" not in reason
    assert held["waiting"].startswith("cannot evaluate on week-00: held: roc_auc is "
                                      "undefined on this holdout: one class")
    judged = spans["week-01"]
    assert judged["bootstrap"] and judged["gate"]["blessed"] and judged["promoted"]
    assert judged["window"] == ["week-00", "week-01"]
    assert judged["triggers"][0]["reason"] == "no champion yet: waiting since span week-00"
    assert spans["week-02"]["served_version"] == judged["promoted"]
