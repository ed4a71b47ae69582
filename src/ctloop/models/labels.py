"""Which ground-truth labels a model can be judged on: one rule for feedback and monitors.

A label delivered for a served prediction must fit the model it labels: 0/1 (or its two
class names) for a binary model, one of its classes for a multiclass one, a finite number
for a regression. The feedback route and ``ctloop feedback`` refuse a batch holding one
that does not (nothing of it is stored); the loop's monitors skip stored ones that do not
(``ctloop.loop.labels``), so a bad label can never break a tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from ctloop.core.errors import UserInputError
from ctloop.core.lazy import lazy_module

if TYPE_CHECKING:
    import pandas as pd

    from ctloop.core.arrays import Cell
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["DUPLICATE_POLICIES", "DuplicatePolicy", "check_labels", "expected_labels",
           "label_fits", "resolve_duplicates"]

DuplicatePolicy = Literal["first", "last", "reject"]
DUPLICATE_POLICIES: tuple[DuplicatePolicy, ...] = ("first", "last", "reject")


def label_fits(labels: pd.Series[Cell], task: str, classes: Sequence[object] | None = None
               ) -> pd.Series[bool]:
    """Which ``labels`` a ``task`` model can be judged on; missing labels count as fitting."""
    present = labels.notna()
    if task == "multiclass":
        if not classes:
            return pd.Series(True, index=labels.index)
        return ~present | _text(labels).isin({str(c) for c in classes})
    numbers = pd.to_numeric(labels, errors="coerce")
    if task == "regression":
        finite = np.isfinite(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
        return ~present | pd.Series(finite, index=labels.index)
    fits = numbers.isin([0, 1])
    if classes and len(classes) == 2:
        fits |= _text(labels).isin({str(c) for c in classes})
    return ~present | fits


def expected_labels(task: str, classes: Sequence[object] | None = None) -> str:
    """The labels a ``task`` model takes, in words."""
    if task == "regression":
        return "a finite number"
    if task == "multiclass" and classes:
        return "one of its classes " + ", ".join(map(str, classes))
    if task == "multiclass":
        return "one of its classes"
    named = f" (or its class names {classes[0]}/{classes[1]})" if classes and len(
        classes) == 2 and {str(c) for c in classes} != {"0", "1"} else ""
    return f"0 or 1{named}"


def check_labels(labels: pd.Series[Cell], task: str, classes: Sequence[object] | None = None,
                 *, model: str = "the model", ids: pd.Series[Cell] | None = None) -> None:
    """Raise one line naming the first label that does not fit and what the model takes."""
    fits = label_fits(labels, task, classes)
    if bool(fits.all()):
        return
    bad = fits[~fits].index
    first = bad[0]
    where = f"row {list(labels.index).index(first)}"
    if ids is not None:
        where += f" ({ids.name} {ids.loc[first]!r})"
    value = labels.loc[first]
    shown = _text(pd.Series([value])).iloc[0] if not isinstance(value, str) else repr(value)
    raise UserInputError(
        f"{len(bad)} label(s) do not fit {model}, a {task} model: {where} has "
        f"{shown}; it takes {expected_labels(task, classes)}. Nothing of this "
        "batch was stored."
    )


def resolve_duplicates(frame: pd.DataFrame, key: str, policy: str) -> tuple[pd.DataFrame, int]:
    """``frame`` with one label per ``key`` by ``policy`` and how many ids had conflicting
    labels (different values; a repeated equal label is not a conflict)."""
    if policy not in DUPLICATE_POLICIES:
        raise UserInputError(
            f"The duplicate-label policy must be one of {', '.join(DUPLICATE_POLICIES)}; "
            f"got {policy!r}."
        )
    labels = _text(frame["label"])
    distinct = labels.groupby(frame[key].astype(str)).nunique()
    conflicts = distinct[distinct > 1]
    if len(conflicts) and policy == "reject":
        raise UserInputError(
            f"{len(conflicts)} id(s) have conflicting labels, e.g. {key} "
            f"{conflicts.index[0]!r}; send one label per id (or choose --on-duplicate first "
            "or last). Nothing of this batch was stored."
        )
    keep: Literal["first", "last"] = "first" if policy == "first" else "last"
    return frame.drop_duplicates(key, keep=keep), len(conflicts)


def _text(labels: pd.Series[Cell]) -> pd.Series[str]:
    """Labels as text, whole floats without their ``.0`` (``1.0`` is the class ``1``)."""
    def one(value: object) -> str:
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    return labels.map(one)
