"""What a run came to on the runs list (the gate's verdict, a quarantine, its headline
metric), and a version page read through the typed evaluation record: no browser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ctloop.core.jsontypes import JSONValue
from ctloop.core.settings import load_settings
from ctloop.metadata import (
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    new_id,
    open_metadata_store,
)
from ctloop.metadata.base import ArtifactRecord
from ctloop.models.metrics import residual_summary
from ctloop.registry import ModelRegistry
from ctloop.ui import create_app
from ctloop.ui.outcomes import Outcome, StepReturn, headline_of, outcome_of
from ctloop.ui.queries import RunRow

JUDGED = StepReturn("evaluate", "succeeded", {"blessed": False, "failed": ["x"],
                                              "summary": "not blessed"})
PUSHED = StepReturn("push", "succeeded", {"version": 2, "promoted": False, "blessed": False})


@pytest.mark.parametrize(("steps", "expected"), [
    ([JUDGED, PUSHED], Outcome("refused", 2, False)),
    ([StepReturn("judge", "succeeded", {"blessed": True}),
      StepReturn("register", "succeeded", {"version": 3, "promoted": True, "blessed": True})],
     Outcome("blessed", 3, True)),  # found by what the steps return, not their names
    ([JUDGED], Outcome("refused")),  # the push never ran
    ([StepReturn("validate", "failed", {})], Outcome("quarantined")),
    ([StepReturn("train", "failed", {})], None),  # failed before the gate: no verdict
    ([StepReturn("statistics", "succeeded", {"rows": 3})], None),  # a plain pipeline
    ([], None),
])
def test_the_outcome_is_read_from_what_the_steps_returned(
    steps: list[StepReturn], expected: Outcome | None,
) -> None:
    assert outcome_of(steps) == expected


def test_the_badge_is_the_verdict_only_on_the_run_it_describes() -> None:
    def row(status: RunStatus, outcome: Outcome | None) -> str:
        run = RunRecord(id=new_id(), pipeline="p", pipeline_version="1", status=status)
        return RunRow(run, 5, 0, 0, outcome=outcome).badge

    assert row(RunStatus.SUCCEEDED, Outcome("refused", 2)) == "refused"
    assert row(RunStatus.SUCCEEDED, Outcome("blessed", 2, True)) == "blessed"
    assert row(RunStatus.FAILED, Outcome("blessed", 2)) == "failed"  # the push failed
    assert row(RunStatus.FAILED, Outcome("quarantined")) == "quarantined"
    assert row(RunStatus.RUNNING, Outcome("refused")) == "running"
    assert row(RunStatus.SUCCEEDED, None) == "succeeded"
    assert Outcome("refused", 2).note == "v2 not promoted"
    assert Outcome("blessed", 3, True).note == "v3 promoted"


def test_the_headline_is_the_gated_metric_else_the_tasks_default() -> None:
    evaluation = {"task": "binary", "roc_auc": 0.8, "log_loss": 0.4, "accuracy": 0.7}
    blessing = {"blessed": True, "summary": "ok"}  # no task: not an evaluation
    gated = headline_of({"gate": {"changes": {"log_loss": 0.01}}}, [blessing, evaluation])
    assert gated is not None and (gated.metric, gated.value) == ("log_loss", 0.4)
    assert gated.better == "lower is better"
    default = headline_of({}, [evaluation])
    assert default is not None and (default.metric, default.value) == ("roc_auc", 0.8)
    regression = headline_of({"gate": {"floors": {"mape": 1}}},
                             [{"task": "regression", "rmse": 2.5, "r2": 0.3}])
    assert regression is not None and regression.metric == "rmse"  # mape not evaluated
    assert headline_of({}, [blessing]) is None
    assert headline_of({}, [{"task": "binary", "roc_auc": None}]) is None


def test_a_regression_version_page_draws_its_residuals_from_the_record(
    ctloop_home: Path,
) -> None:
    settings = load_settings()
    store = open_metadata_store(settings.metadata_url)
    run = store.create_run(RunRecord(id=new_id(), pipeline="p", pipeline_version="1"))
    step = store.save_step(StepRecord(id=new_id(), run_id=run.id, name="train",
                                      component="train", component_version="1",
                                      status=StepStatus.SUCCEEDED))
    model = store.add_artifact(ArtifactRecord(id=new_id(), type="Model", uri="file:///m",
                                              sha256="0" * 64, size=1,
                                              producer_step_id=step.id))
    y = np.array([1.0, 2.0, 3.0, 5.0])
    overall: dict[str, JSONValue] = {
        "n": 4, "metrics": {"rmse": {"value": 0.5, "lo": 0.2, "hi": 0.9}},
        "residuals": residual_summary(y, y - 0.25)}
    ModelRegistry(store).register("price", model.id, properties={
        "evaluation": {"overall": overall, "slices": {}, "label": "price", "n_rows": 4},
        "blessing": {"blessed": False, "summary": "not blessed: failed rmse <= 0.1",
                     "champion_version": None, "classes": {"status": "skipped"},
                     "rules": [{"rule": "rmse <= 0.1", "kind": "floor", "metric": "rmse",
                                "status": "fail", "detail": "rmse = 0.5"}]}})
    store.close()
    client = TestClient(create_app(settings))
    page = client.get("/models/price/versions/1").text
    assert 'id="residuals"' in page and "mean 0.25" in page
    assert "not blessed: failed rmse &lt;= 0.1" in page and "rmse = 0.5" in page
    assert "keeps every class" not in page  # the skipped class check is not shown
    listing = client.get("/models/price").text
    assert "refused" in listing and "0.5" in listing
