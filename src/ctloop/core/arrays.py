"""Names for the NumPy arrays that data, models, metrics and monitors pass around.

A bare ``np.ndarray`` is ``ndarray[Any, dtype[Any]]``: it says nothing of what the array
holds and counts as an explicit ``Any`` under ``disallow_any_explicit``. These say it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from pandas._typing import SeriesDType  # pandas-stubs: what a Series may hold

__all__ = ["Cell", "Floats", "Indices", "Values"]

Floats: TypeAlias = npt.NDArray[np.float64]
"""Scores, probabilities, metric values: float64."""
Indices: TypeAlias = npt.NDArray[np.intp]
"""Positions (``argsort``, ``flatnonzero``) and class indices."""
Values: TypeAlias = "npt.NDArray[np.generic[object]]"  # a string: generic[...] is typing-only
"""A column of any dtype (numbers, strings, Python objects), as a frame or a request holds it."""
Cell = TypeVar("Cell", bound="SeriesDType")
"""What a pandas column holds: ``pd.Series`` is invariant, so a function that takes any column
(a label of strings, ints or floats) is generic in it, ``pd.Series[Cell]``."""
