"""The task of a model: binary, multiclass or regression, declared or read off the label.

The task decides the metrics, the gate's direction, the monitors, the estimate and the
shape of every answer, so it is decided once, here, and recorded in the signature.
A declared task is checked against the label (``label_classes``); an absent one is
inferred from the label and the metric (``resolve_task``): ``rmse`` on an integer
label means regression, ``macro_f1`` on a 0/1 label multiclass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from ctloop.core.errors import NotTrainable, UserInputError
from ctloop.core.lazy import lazy_module

if TYPE_CHECKING:
    import pandas as pd

    from ctloop.core.arrays import Cell, Floats
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = [
    "HIGHER_IS_BETTER",
    "TASKS",
    "ClassLabel",
    "Task",
    "better_word",
    "check_metric",
    "check_task",
    "class_label",
    "default_metric",
    "higher_is_better",
    "infer_task",
    "label_classes",
    "metrics_for",
    "normalize_task",
    "resolve_task",
    "shaped",
    "task_of_metric",
]

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = get_args(Task)
ClassLabel = str | int

# At most this many distinct integer values make an integer label a set of classes.
MAX_INTEGER_CLASSES = 20

_METRICS: dict[Task, tuple[str, ...]] = {
    "binary": ("roc_auc", "log_loss", "accuracy", "precision", "recall", "f1"),
    "multiclass": ("accuracy", "macro_f1", "weighted_f1", "log_loss", "roc_auc"),
    "regression": ("rmse", "mae", "r2", "mape"),
}

HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "log_loss": False,
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "macro_f1": True,
    "weighted_f1": True,
    "rmse": False,
    "mae": False,
    "r2": True,
    "mape": False,
    "expected_cost": False,
}
"""The one home of every metric's direction: the gate, decay, slices and every text
that says "better", "fires below" or "fires above" read it."""


def higher_is_better(metric: str) -> bool:
    """True when a larger ``metric`` is better (roc_auc), False for losses and errors."""
    try:
        return HIGHER_IS_BETTER[metric]
    except KeyError:
        raise UserInputError(
            f"Unknown metric {metric!r}; use one of {', '.join(HIGHER_IS_BETTER)}."
        ) from None


def better_word(metric: str) -> str:
    """``higher`` or ``lower``: the direction in which ``metric`` improves, for texts."""
    return "higher" if higher_is_better(metric) else "lower"


def normalize_task(task: str | None) -> Task | None:
    """A stored or declared task name as a :data:`Task`; ``classification`` reads as binary."""
    if task is None:
        return None
    if task == "classification":
        return "binary"
    return check_task(task)


def check_task(task: str, *, where: str = "task") -> Task:
    """``task`` as a :data:`Task`, or one line naming the three choices."""
    if task not in TASKS:
        raise UserInputError(
            f"{where} must be one of {', '.join(TASKS)}; got {task!r}."
        )
    return task


def infer_task(label: pd.Series[Cell]) -> Task:
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
        if whole and distinct <= MAX_INTEGER_CLASSES and bool(
                (values.to_numpy(dtype=np.float64) >= 0).all()):
            return "multiclass"
    return "regression"


def metrics_for(task: Task) -> tuple[str, ...]:
    """The metrics ctloop computes for ``task``, the headline first."""
    return _METRICS[task]


def default_metric(task: Task) -> str:
    """The headline metric of ``task`` (roc_auc, accuracy, rmse)."""
    return _METRICS[task][0]


def task_of_metric(metric: str) -> Task | None:
    """The only task that has ``metric``, or None when several share it (roc_auc)."""
    owners = [t for t in TASKS if metric in _METRICS[t]]
    return owners[0] if len(owners) == 1 else None


def check_metric(task: Task, metric: str, *, where: str = "metric") -> str:
    """``metric`` if ``task`` has it, else one line naming the task's metrics."""
    if metric not in _METRICS[task]:
        raise UserInputError(
            f"{where} {metric!r} does not apply to a {task} task; use one of "
            f"{', '.join(_METRICS[task])}."
        )
    return metric


def _possible_tasks(label: pd.Series[Cell]) -> list[Task]:
    """The tasks a label can support, the inferred one first."""
    values = label.dropna()
    first = infer_task(label)
    out: list[Task] = [first]
    numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
        values.dtype)
    distinct = values.nunique()
    if distinct == 2:
        out.append("binary")
    if distinct >= 2 and (not numeric or bool((values == np.round(values)).all())):
        out.append("multiclass")
    if numeric:
        out.append("regression")
    return list(dict.fromkeys(out))


def _describe(label: pd.Series[Cell], name: str) -> str:
    values = label.dropna()
    kind = "numbers" if pd.api.types.is_numeric_dtype(values.dtype) else "strings"
    distinct = values.nunique()
    shown = ", ".join(map(str, sorted(values.unique().tolist(), key=str)[:5]))
    more = ", ..." if distinct > 5 else ""
    return f"the label {name!r} holds {kind} ({distinct} distinct: {shown}{more})"


def resolve_task(
    label: pd.Series[Cell], *, task: str | None = None, metric: str | None = None,
    name: str | None = None,
) -> Task:
    """The declared ``task`` checked against ``metric``, else the task the label and metric imply.

    One clear line (``UserInputError``) for an unknown task, a metric of another task,
    or a metric the label cannot support (``rmse`` on a string label).
    """
    name = name or str(label.name)
    declared = normalize_task(task)
    if declared is not None:
        if metric is not None:
            check_metric(declared, metric)
        return declared
    possible = _possible_tasks(label)
    if metric is None:
        return possible[0]
    if metric not in HIGHER_IS_BETTER:
        raise UserInputError(
            f"Unknown metric {metric!r}; use one of {', '.join(HIGHER_IS_BETTER)}."
        )
    for candidate in possible:
        if metric in _METRICS[candidate]:
            return candidate
    wanted = [t for t in TASKS if metric in _METRICS[t]]
    raise UserInputError(
        f"metric {metric!r} needs a {' or '.join(wanted)} task, but {_describe(label, name)}; "
        f"use one of {', '.join(_METRICS[possible[0]])} or declare task."
    )


def class_label(value: object) -> ClassLabel:
    """A class as JSON keeps it: numbers (and booleans) as int, anything else as str."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return str(value)


def label_classes(
    label: pd.Series[Cell], task: Task, *, name: str | None = None,
    classes: Sequence[ClassLabel] | None = None,
) -> list[ClassLabel] | None:
    """The classes of a classification label in order (sorted), None for regression.

    Raises :class:`NotTrainable` when the label cannot train ``task``: one class only,
    a declared class with no rows, more than two classes for binary, or a non-numeric
    label for regression.
    """
    name = name or str(label.name)
    values = label.dropna()
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(
                values.dtype):
            raise NotTrainable(
                f"A regression needs a numeric label, but {_describe(label, name)}; "
                "declare task = \"multiclass\" or \"binary\"."
            )
        if values.nunique() < 2:
            only = str(values.iloc[0]) if len(values) else "no rows"
            raise NotTrainable(
                f"The label {name!r} has one value only ({only}); a regression needs it to vary."
            )
        return None
    found = sorted({class_label(v) for v in values.unique().tolist()}, key=_class_key)
    if classes is not None:
        declared = [class_label(c) for c in classes]
        unknown = [c for c in found if c not in declared]
        if unknown:
            raise UserInputError(
                f"The label {name!r} has values {unknown} that are not among the declared "
                f"classes {declared}."
            )
        missing = [c for c in declared if c not in found]
        if missing:
            raise NotTrainable(
                f"The label {name!r} has no rows of class(es) {missing} in the training data; "
                f"a {task} model needs every declared class."
            )
        found = declared
    if len(found) < 2:
        raise NotTrainable(
            f"The label {name!r} has one class only ({found[0] if found else 'no rows'}); "
            f"a {task} model needs at least two."
        )
    if task == "binary" and len(found) > 2:
        raise NotTrainable(
            f"A binary model needs two classes, but {_describe(label, name)}; "
            "declare task = \"multiclass\"."
        )
    return found


def _class_key(value: ClassLabel) -> tuple[int, int | str]:
    return (0, value) if isinstance(value, int) else (1, str(value))


def shaped(raw: object, task: Task) -> Floats:
    """A library's raw output in the contract's shape: (n,) or (n, k), C-contiguous float64.

    Binary keeps the positive (last) column of a two-column probability matrix;
    multiclass widens a one-column binary probability to two columns. Any other
    mismatch is left for :meth:`LoadedModel.predict` to report.
    """
    out = np.asarray(raw, dtype=np.float64)
    if task == "multiclass":
        if out.ndim == 1:
            out = np.column_stack([1.0 - out, out])
    elif out.ndim == 2 and out.shape[1] in (1, 2):
        out = out[:, -1]
    return np.ascontiguousarray(out)
