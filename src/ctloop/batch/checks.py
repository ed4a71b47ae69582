"""Batch scoring checks its rows exactly as the prediction service does.

One function decides what a model accepts: ``Signature.conform``, the service's check of
request values (types, nulls where training never saw one, infinities, integer ranges).
Batch scoring calls it on each chunk; when the chunk fails, the rows at fault are found
by halving the chunk (a few conform calls per bad row, never one per row), so a file
with one bad row in a million is judged as fast as a clean one.

What happens to the rows the service would refuse is the caller's choice
(``--on-invalid``): ``fail`` (the default: the first problem, as one line, and nothing
written), ``skip`` (left out of the output) or ``flag`` (kept, unscored, with the reason
in an ``invalid`` column).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from ctloop.core.arrays import Values
from ctloop.core.errors import UserInputError
from ctloop.models.signature import Signature

__all__ = ["ON_INVALID", "OnInvalid", "check_on_invalid", "invalid_rows"]

OnInvalid = Literal["fail", "skip", "flag"]
ON_INVALID: tuple[OnInvalid, ...] = ("fail", "skip", "flag")


def check_on_invalid(choice: str) -> OnInvalid:
    if choice not in ON_INVALID:
        raise UserInputError(
            f"--on-invalid must be one of {', '.join(ON_INVALID)}; got {choice!r}.")
    return choice


def invalid_rows(signature: Signature, frame: pd.DataFrame, *, lenient: Collection[str] = (),
                 what: str = "The input rows") -> dict[int, str]:
    """Positions of the rows of ``frame`` the service would refuse, with its message.

    ``Signature.conform`` judges each column on its own, in signature order, so the rows
    are searched column by column (a one-column signature, the same check): a span with
    thousands of bad rows costs conform calls on one column, not on all of them, and a
    row bad in two columns gets the message of the first, as the service gives it.
    """
    columns = {c: frame[c].to_numpy() for c in signature.columns}
    found: dict[int, str] = {}
    for spec in signature.inputs:
        one = dataclasses.replace(signature, inputs=(spec,))
        values = columns[spec.name]

        def problem(lo: int, hi: int, one: Signature = one, values: Values = values,
                    name: str = spec.name) -> str | None:
            try:
                one.conform({name: _part(values, lo, hi)}, lenient=lenient, what=what)
            except UserInputError as exc:
                return exc.message
            return None

        for row, message in _bisect(problem, len(frame)).items():
            found.setdefault(row, message)
    return dict(sorted(found.items()))


def _bisect(problem: Callable[[int, int], str | None], n: int) -> dict[int, str]:
    """The rows ``problem`` refuses, found by halving the ranges it refuses."""
    found: dict[int, str] = {}
    pending = [(0, n)]
    while pending:
        lo, hi = pending.pop()
        if hi <= lo:
            continue
        message = problem(lo, hi)
        if message is None:
            continue
        if hi - lo == 1:
            found[lo] = message
            continue
        mid = (lo + hi) // 2
        pending += [(mid, hi), (lo, mid)]
    return found


def _part(values: Values, lo: int, hi: int) -> Values:
    part: Values = values[lo:hi]
    if part.dtype == object:  # the service sees Python values with None for a missing one
        out: npt.NDArray[np.object_] = part.astype(object)  # a copy
        out[pd.isna(part)] = None
        return out
    return part
