"""KServe v1 (and ctloop's ``rows``/``columns``) bodies: decode -> Inputs, encode <- Scored.

Turning a list of row objects into columns happens in C (``itemgetter`` over the
rows, then ``zip``), never in a Python loop per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from ctloop.serving.errors import InvalidRequest
from ctloop.serving.inputs import Inputs, request_ids
from ctloop.serving.scoring.predict import Scored

__all__ = ["V1_KEYS", "encode", "parse_v1"]

V1_KEYS = frozenset({"rows", "columns", "instances", "request_ids", "row_ids", "now"})
_EXAMPLE = (
    'Send {"instances": [{"col": value, ...}]} (KServe v1), {"rows": [{"col": value, ...}]} '
    'or {"columns": {"col": [values]}}.'
)


def parse_v1(body: Any, signature_columns: Sequence[str]) -> Inputs:
    """A v1 body as columns; list instances are read in ``signature_columns`` order."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object. {_EXAMPLE}")
    unknown = sorted(set(body) - V1_KEYS)
    if unknown:
        raise InvalidRequest(
            f"Unknown key(s) {unknown} in the request body; allowed: {sorted(V1_KEYS)}."
        )
    given = [k for k in ("rows", "columns", "instances") if k in body]
    if len(given) != 1:
        raise InvalidRequest(f"Give exactly one of 'instances', 'rows' or 'columns'. {_EXAMPLE}")
    key = given[0]
    if key == "columns":
        columns, n = _from_columns(body["columns"])
    else:
        columns, n = _from_rows(key, body[key], signature_columns)
    ids = request_ids(body.get("request_ids"), n)
    row_ids = body.get("row_ids")
    if row_ids is not None:
        if not isinstance(row_ids, list) or len(row_ids) != n:
            raise InvalidRequest(f"'row_ids' must be a list with one id per row ({n}).")
        row_ids = [None if r is None else str(r) for r in row_ids]
    now = body.get("now")
    if now is not None and not isinstance(now, str):
        raise InvalidRequest("'now' must be an ISO timestamp string, e.g. 2013-06-01T12:00:00.")
    return Inputs(columns, n, ids, row_ids, now, "v1")


def encode(name: str, inputs: Inputs, scored: Scored) -> dict[str, Any]:
    """The v1 answer for ``scored``.

    ``predictions``: the values (regression), the class labels (multiclass) or, for
    binary models as before labels existed, P(positive class) beside ``decisions``
    (0/1). Classification also answers ``labels`` and ``probabilities`` (one list per
    row, in the order of the model's classes).
    """
    answer = scored.answer
    predictions = answer.labels if answer.kind == "multiclass" else answer.scores
    out: dict[str, Any] = {
        "model": name,
        "predictions": _json(predictions),
        "versions": scored.versions(),
        "routes": scored.routes(),
        "request_ids": inputs.request_ids,
    }
    if answer.decisions is not None:
        out["decisions"] = _json(answer.decisions)
    probabilities = answer.probabilities()
    if answer.labels is not None and probabilities is not None:
        out["labels"] = _json(answer.labels)
        out["probabilities"] = _json(probabilities)
    missing = scored.missing_by_row()
    if missing is not None:
        out["missing"] = missing
    return out


def _json(values: Any) -> Any:
    """An array as orjson writes it: C-ordered numbers, or plain Python values."""
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array)
    return array.tolist()


def _from_columns(columns: Any) -> tuple[dict[str, Sequence[Any]], int]:
    if not isinstance(columns, dict) or not columns:
        raise InvalidRequest(f"'columns' must be a non-empty object of lists. {_EXAMPLE}")
    if not all(isinstance(v, list) for v in columns.values()):
        raise InvalidRequest(f"Every value of 'columns' must be a list. {_EXAMPLE}")
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) != 1 or not next(iter(lengths.values())):
        raise InvalidRequest(
            f"The 'columns' lists must be non-empty and equally long; got lengths {lengths}."
        )
    return columns, next(iter(lengths.values()))


def _from_rows(
    key: str, rows: Any, signature_columns: Sequence[str]
) -> tuple[dict[str, Sequence[Any]], int]:
    if not isinstance(rows, list) or not rows:
        raise InvalidRequest(f"'{key}' must be a non-empty list of objects. {_EXAMPLE}")
    kinds = set(map(type, rows))
    if kinds == {list}:
        if key != "instances":
            raise InvalidRequest(f"Every item of 'rows' must be an object. {_EXAMPLE}")
        return _from_lists(rows, signature_columns)
    if kinds != {dict}:
        raise InvalidRequest(
            f"Every item of '{key}' must be an object (or, for 'instances', every item a list "
            f"of values in the order {list(signature_columns)}). {_EXAMPLE}"
        )
    sizes = list(map(len, rows))
    if not all(sizes):
        raise InvalidRequest(
            f"Row {sizes.index(0)} of '{key}' is empty; every row needs at least one input: "
            f"the model's inputs {list(signature_columns)} (or the entity keys to look them "
            "up)."
        )
    first = rows[0]
    names = list(first)
    if all(r.keys() == first.keys() for r in rows):
        if len(names) == 1:
            return {names[0]: [r[names[0]] for r in rows]}, len(rows)
        return dict(zip(names, zip(*map(itemgetter(*names), rows), strict=True), strict=True)), len(
            rows
        )
    seen = dict.fromkeys(k for r in rows for k in r)  # rows with different keys: nulls fill
    return {k: [r.get(k) for r in rows] for k in seen}, len(rows)


def _from_lists(
    rows: list[list[Any]], signature_columns: Sequence[str]
) -> tuple[dict[str, Sequence[Any]], int]:
    width = len(signature_columns)
    sizes = set(map(len, rows))
    if sizes != {width}:
        raise InvalidRequest(
            f"Every instance must list {width} values, in the order {list(signature_columns)}; "
            f"got instances of length {sorted(sizes)}."
        )
    return dict(zip(signature_columns, zip(*rows, strict=True), strict=True)), len(rows)
