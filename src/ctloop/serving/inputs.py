"""What every protocol decodes a request into: :class:`Inputs`, and request ids.

One list (or typed array) of values per column, the row count and the ids.
Values are checked against the model's signature later (``Signature.conform``),
once per column. A request that sent its rows as one float block in signature
order (a v2 ``[n, k]`` FP64 tensor, the common one) keeps that block too, so the
checks and the model read it whole instead of its columns one by one.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ctloop.requestlog.records import RequestProtocol
from ctloop.serving.errors import InvalidRequest

__all__ = ["Inputs", "new_request_id", "request_ids"]

_PREFIX = uuid.uuid4().hex[:16]  # per process: ids stay unique across workers and restarts
_COUNTER = itertools.count()
_SUFFIXES = [f"-{i}" for i in range(4096)]  # the row part of generated request ids


@dataclass(frozen=True)
class Inputs:
    """One request's values by column (before type checks) and its ids."""

    columns: Mapping[str, Sequence[Any] | np.ndarray]
    rows: int
    request_ids: list[str]
    row_ids: list[str | None] | None = None
    now: str | None = None
    protocol: RequestProtocol = "v1"
    coerce: bool = False  # values arrive as text by the protocol's design (a 2-D BYTES tensor)
    matrix: np.ndarray | None = None  # float64 [rows, k]: the values of ``columns``, whole
    matrix_columns: tuple[str, ...] = ()  # the columns of ``matrix``, in order

    def take(self, mask: np.ndarray) -> Inputs:
        """The rows where ``mask`` holds (a route's share)."""
        index = np.flatnonzero(mask)
        columns = {k: np.asarray(v, dtype=None if isinstance(v, np.ndarray) else object)[index]
                   for k, v in self.columns.items()}
        ids = [self.request_ids[i] for i in index.tolist()]
        row_ids = None if self.row_ids is None else [self.row_ids[i] for i in index.tolist()]
        matrix = None if self.matrix is None else self.matrix[index]
        return Inputs(columns, len(index), ids, row_ids, self.now, self.protocol, self.coerce,
                      matrix, self.matrix_columns)


def new_request_id() -> str:
    """A fresh id, unique across processes, cheap (no system call per request)."""
    return f"{_PREFIX}{next(_COUNTER):x}"


def request_ids(given: Any, n: int) -> list[str]:
    """The caller's ids (one per row), else fresh unique ones."""
    if given is None:
        if n == 1:  # the common request
            return [f"{_PREFIX}{next(_COUNTER):x}-0"]
        prefix = f"{_PREFIX}{next(_COUNTER):x}"
        if n <= len(_SUFFIXES):  # joining two strings is cheaper than formatting a number
            return [prefix + suffix for suffix in _SUFFIXES[:n]]
        return [f"{prefix}-{i}" for i in range(n)]
    if not isinstance(given, list) or len(given) != n:
        raise InvalidRequest(f"'request_ids' must be a list with one id per row ({n}).")
    if not all(isinstance(i, str | int) and not isinstance(i, bool) for i in given):
        raise InvalidRequest("'request_ids' must be strings (or integers).")
    return [str(i) for i in given]
