"""Trainers for the loop's fault tests: one that fails on a chosen span, one that hangs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ctloop.components.training import TrainSummary
from ctloop.components.training import train as standard
from ctloop.pipeline import Dataset, Input, Model, Output, component


@component(version="1")
def broken(data: Input[Dataset], model: Output[Model], label: str, features: list[str],
           algorithm: str = "lightgbm", params: dict[str, Any] | None = None,
           seed: int = 0) -> TrainSummary:
    """Always raises: a trainer with a bug."""
    raise RuntimeError("the trainer has a bug")


@component(version="1")
def fails_on_week_01(data: Input[Dataset], model: Output[Model], label: str,
                     features: list[str], algorithm: str = "lightgbm",
                     params: dict[str, Any] | None = None, seed: int = 0) -> TrainSummary:
    """Trains like the standard trainer, except on a window ending with week-01."""
    if (data.metadata.get("spans") or [""])[-1] == "week-01":
        raise RuntimeError("out of memory on week-01")
    assert standard.func is not None
    return standard.func(data=data, model=model, label=label, features=features,
                         algorithm=algorithm, params=params, seed=seed)


@component(version="1")
def hangs_once(data: Input[Dataset], model: Output[Model], label: str, features: list[str],
               algorithm: str = "lightgbm", params: dict[str, Any] | None = None,
               seed: int = 0) -> TrainSummary:
    """Hangs while the file ``$LOOP_TEST_HANG`` exists (to be killed), else trains."""
    marker = Path(os.environ.get("LOOP_TEST_HANG", "/nonexistent"))
    if marker.exists():
        (marker.parent / "started").write_text(str(os.getpid()))
        time.sleep(120)
    assert standard.func is not None
    return standard.func(data=data, model=model, label=label, features=features,
                         algorithm=algorithm, params=params, seed=seed)


@component(version="1")
def needs_two_classes(data: Input[Dataset], model: Output[Model], label: str,
                      features: list[str], algorithm: str = "lightgbm",
                      params: dict[str, Any] | None = None, seed: int = 0) -> TrainSummary:
    """Trains like the standard trainer; a label with one class is ``NotTrainable``."""

    from ctloop.core.errors import NotTrainable

    classes = sorted(data.read([label])[label].unique().tolist())
    if len(classes) < 2:
        raise NotTrainable(f"The label {label!r} has one class ({classes[0]!r}) in the "
                           "window; a binary model needs both.")
    assert standard.func is not None
    return standard.func(data=data, model=model, label=label, features=features,
                         algorithm=algorithm, params=params, seed=seed)
