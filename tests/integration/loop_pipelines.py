"""A loop's own training pipeline (``pipeline = "loop_pipelines.py:custom_train"``):
steps named its own way, a trainer that hangs once (to be killed), no infra check."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ctloop.components.training import TrainSummary, evaluate, push
from ctloop.components.training import train as standard
from ctloop.loop.pipeline import window_set
from ctloop.pipeline import Dataset, Input, Model, Output, component, pipeline


@component(version="1", name="fit_candidate")
def fit(data: Input[Dataset], model: Output[Model], label: str, features: list[str],
        seed: int = 0) -> TrainSummary:
    """Hangs while the file ``$LOOP_TEST_HANG`` exists (to be killed), else trains."""
    marker = Path(os.environ.get("LOOP_TEST_HANG", "/nonexistent"))
    if marker.exists():
        (marker.parent / "started").write_text(str(os.getpid()))
        time.sleep(120)
    assert standard.func is not None
    return standard.func(data=data, model=model, label=label, features=features,
                         algorithm="lightgbm", params={"n_estimators": 10}, seed=seed)


@pipeline(name="custom_train")
def custom_train(spans: list[str], event_time: str, label: str, features: list[str],
                 model_name: str, gate: dict[str, Any], holdout: float = 0.25,
                 algorithm: str = "lightgbm", params: dict[str, Any] | None = None,
                 trainer: str = "", seed: int = 0, alias: str = "champion", reason: str = "",
                 feature_refs: list[str] | None = None, landed: list[str] | None = None
                 ) -> None:
    """Train, judge and push, with step names of its own."""
    sets = window_set(spans=spans, event_time=event_time, label=label, holdout=holdout,
                      landed=landed or [])
    model = fit(data=sets.outputs["train"], label=label, features=features, seed=seed)
    judged = evaluate.with_options(name="judge")(
        candidate=model, data=sets.outputs["evaluation"], model_name=model_name, gate=gate,
        n_boot=20, alias="champion")
    push.with_options(name="ship")(
        model=model, evaluation=judged.outputs["evaluation"],
        blessing=judged.outputs["blessing"], model_name=model_name, alias=alias,
        reason=reason)
