"""The task of a model: binary, multiclass or regression, declared or read off the label.

The task decides the metrics, the gate's direction, the monitors, the estimate and the
shape of every answer, so it is decided once, here, and recorded in the signature.
"""

from __future__ import annotations

from typing import Literal, get_args

import pandas as pd

from ctloop.core.errors import UserInputError

__all__ = ["TASKS", "Task", "check_metric", "check_task", "infer_task", "metrics_for"]

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = get_args(Task)

# At most this many distinct integer values make an integer label a set of classes.
MAX_INTEGER_CLASSES = 20

_METRICS: dict[Task, tuple[str, ...]] = {
    "binary": ("roc_auc", "log_loss", "accuracy", "precision", "recall", "f1"),
    "multiclass": ("accuracy", "macro_f1", "weighted_f1", "log_loss", "roc_auc"),
    "regression": ("rmse", "mae", "r2", "mape"),
}


def check_task(task: str, *, where: str = "task") -> Task:
    """``task`` as a :data:`Task`, or one line naming the three choices."""
    if task not in TASKS:
        raise UserInputError(
            f"{where} must be one of {', '.join(TASKS)}; got {task!r}."
        )
    return task


def infer_task(label: pd.Series) -> Task:
    """The task a label implies: two values binary, strings or few integers multiclass."""
    values = label.dropna()
    distinct = values.nunique()
    if distinct <= 2 and not pd.api.types.is_float_dtype(values.dtype):
        return "binary"
    if pd.api.types.is_bool_dtype(values.dtype):
        return "binary"
    if not pd.api.types.is_numeric_dtype(values.dtype):
        return "multiclass" if distinct > 2 else "binary"
    if pd.api.types.is_integer_dtype(values.dtype) and distinct <= MAX_INTEGER_CLASSES:
        return "multiclass"
    if pd.api.types.is_float_dtype(values.dtype):
        whole = bool((values == values.round()).all())
        if distinct <= 2 and whole:
            return "binary"
        if whole and distinct <= MAX_INTEGER_CLASSES and bool((values >= 0).all()):
            return "multiclass"
    return "regression"


def metrics_for(task: Task) -> tuple[str, ...]:
    """The metrics ctloop computes for ``task``, the headline first."""
    return _METRICS[task]


def check_metric(task: Task, metric: str, *, where: str = "metric") -> str:
    """``metric`` if ``task`` has it, else one line naming the task's metrics."""
    if metric not in _METRICS[task]:
        raise UserInputError(
            f"{where} {metric!r} does not apply to a {task} task; use one of "
            f"{', '.join(_METRICS[task])}."
        )
    return metric
