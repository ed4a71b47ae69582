"""The loop's task: declared or read off the label, checked against the metric; a
bootstrap that cannot train yet waits for a span it can train on, saying why."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ctloop.loop.sample import write_sample_spans
from ctloop.testing.cli import cli, one_error_line
from ctloop.testing.loops import churn_loop

pytestmark = pytest.mark.slow

TRAINERS = Path(__file__).with_name("loop_trainers.py")

LOOP = churn_loop(
    'retrain_on = ["new_span"]',
    'window = "2 spans"',
    '{extra}',
)


@pytest.fixture
def project(ctloop_home: Path) -> Path:
    write_sample_spans(ctloop_home / "landing", spans=4, rows=300, change_at=None,
                       shift_at=None)
    return ctloop_home


def test_a_class_missing_from_the_first_span_makes_the_bootstrap_wait(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (project / "ctloop.toml").write_text(LOOP.format(
        extra=f'train = "{TRAINERS}:needs_two_classes"'))
    first = project / "landing" / "week-00.parquet"
    pd.read_parquet(first).assign(churned=0).to_parquet(first)  # nobody churned yet
    third = project / "landing" / "week-02.parquet"
    frame = pd.read_parquet(third)
    frame.loc[frame.index[-100:], "churned"] = 1  # its holdout (the last quarter): one class
    frame.to_parquet(third)
    code, out, err = cli(capsys, "loop", "replay", "churn", "--json")
    assert code == 0, err
    spans = {s["span"]: s for s in json.loads(out)["spans"]}
    waited = spans["week-00"]
    assert waited["bootstrap"] and waited["promoted"] is None and waited["gate"] is None
    assert waited["waiting"].startswith("cannot train on week-00: The label 'churned' has "
                                        "one class (0)")
    trained = spans["week-01"]
    assert trained["bootstrap"] and trained["promoted"] == 1
    assert trained["window"] == ["week-00", "week-01"]  # the waited span counts too
    assert trained["triggers"][0]["reason"] == "no champion yet: waiting since span week-00"
    one_class = spans["week-02"]
    assert one_class["served_version"] == 1 and not one_class["bootstrap"]
    assert one_class["gate"]["note"] == ("roc_auc is undefined on the holdout of span week-02 "
                                         "for the candidate and the champion (e.g. one class "
                                         "in its labels)"), one_class["gate"]
    # (whether a candidate judged on an undefined metric may be blessed is the gate's call)
    assert one_class["gate"]["candidate"] is None and one_class["gate"]["champion"] is None
    code, out, err = cli(capsys, "loop", "replay", "churn")  # the terminal says it waits
    assert code == 0, err
    assert "week-00 bootstrap waits: cannot train on week-00" in " ".join(out.split())


def test_the_task_is_read_off_the_label_and_checked_against_the_metric(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (project / "ctloop.toml").write_text(LOOP.format(extra='metric = "rmse"'))
    line = one_error_line(cli(capsys, "loop", "replay", "churn")[2])
    assert line.endswith("Loop 'churn': key 'metric' 'rmse' does not apply to a binary task; "
                         "use one of roc_auc, log_loss, accuracy, precision, recall, f1. (the "
                         "task 'binary' is read off the label 'churned'; declare key 'task' if "
                         "that is wrong)"), line
    (project / "ctloop.toml").write_text(LOOP.format(extra='task = "regression"'))
    code, out, err = cli(capsys, "loop", "status", "churn", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert (status["task"], status["metric"]) == ("regression", "rmse")
    (project / "ctloop.toml").write_text(LOOP.format(extra='task = "regresion"'))
    line = one_error_line(cli(capsys, "loop", "status", "churn")[2])
    assert "Loop 'churn': key 'task' must be one of binary, multiclass, regression; got " \
           "'regresion'." in line


def test_a_regression_loop_is_read_off_a_numeric_label_and_decay_fires_above(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Spend in the next month, a number: the loop infers regression, judges on rmse, and
    decay fires when the live rmse rises above its threshold (a relation that changes)."""
    import numpy as np

    (project / "ctloop.toml").write_text(LOOP.format(extra="").replace(
        'label = "churned"', 'label = "amount"').replace(
        'retrain_on = ["new_span"]', 'retrain_on = ["decay"]\ndecay = { max_drop = 0.5, '
        'min_labels = 50 }\ntrain = { flavor = "lightgbm", params = { n_estimators = 30 } }'))
    for i, path in enumerate(sorted((project / "landing").glob("*.parquet"))):
        frame = pd.read_parquet(path)
        noise = np.random.default_rng(i).normal(0, 0.3, len(frame))
        sign = -1.0 if i >= 2 else 1.0  # the relation flips at week-02
        frame.drop(columns=["churned"]).assign(
            amount=sign * 3.0 * frame["usage"] + noise).to_parquet(path)
    code, out, err = cli(capsys, "loop", "replay", "churn", "--json")
    assert code == 0, err
    replayed = json.loads(out)
    assert replayed["metric"] == "rmse"
    spans = {s["span"]: s for s in replayed["spans"]}
    assert spans["week-00"]["promoted"] == 1
    calm = next(t for t in spans["week-01"]["triggers"] if t["name"] == "decay")
    assert not calm["fired"] and "(fires above " in calm["reason"], calm
    change = next(t for t in spans["week-02"]["triggers"] if t["name"] == "decay")
    assert change["fired"] and change["reason"].startswith("live rmse "), change
    assert "(fires above " in change["reason"]
    assert spans["week-02"]["live"]["rmse"] > spans["week-01"]["live"]["rmse"] + 1


def test_a_multiclass_loop_with_string_classes_catches_a_relabelling_and_recovers(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Four string classes by the usage/tenure quadrant; 'dog' appears from week-01 on and
    'ant' and 'bee' swap at week-03 (a relabelling): decay fires there, the next champion
    recovers within one span, and a second replay gives the same JSON."""
    write_sample_spans(project / "landing", spans=6, rows=400, change_at=None, shift_at=None)
    for i, path in enumerate(sorted((project / "landing").glob("*.parquet"))):
        frame = pd.read_parquet(path)
        quadrant = (frame["usage"] > 0).astype(int) * 2 + (frame["tenure"] > 0).astype(int)
        names = ["ant", "bee", "cat", "dog" if i >= 1 else "cat"]
        if i >= 3:
            names[0], names[1] = names[1], names[0]
        frame.drop(columns=["churned"]).assign(
            kind=quadrant.map(dict(enumerate(names)))).to_parquet(path)
    (project / "ctloop.toml").write_text(LOOP.format(extra="").replace(
        'label = "churned"', 'label = "kind"').replace(
        'retrain_on = ["new_span"]', 'retrain_on = ["decay"]\ndecay = { max_drop = 0.1, '
        'min_labels = 50 }\ntrain = { flavor = "lightgbm", params = { n_estimators = 30 } }'
    ).replace('window = "2 spans"', 'window = "1 span"'))
    code, out, err = cli(capsys, "loop", "replay", "churn", "--json")
    assert code == 0, err
    replayed = json.loads(out)
    assert replayed["metric"] == "accuracy", replayed  # the task read off the string label
    spans = {s["span"]: s for s in replayed["spans"]}
    assert list(spans) == [f"week-{i:02d}" for i in range(6)]
    assert all(s["status"] == "valid" for s in spans.values()), [
        (s["span"], s["anomalies"]) for s in spans.values()]
    assert spans["week-00"]["promoted"] == 1
    change = next(t for t in spans["week-03"]["triggers"] if t["name"] == "decay")
    assert change["fired"], change
    before, at, after = (spans[w]["live"]["accuracy"] for w in ("week-02", "week-03", "week-04"))
    assert at < before - 0.2 and after > at + 0.2, (before, at, after)
    code, again, err = cli(capsys, "loop", "replay", "churn", "--json")
    assert code == 0, err
    assert json.loads(again)["spans"] == replayed["spans"]
