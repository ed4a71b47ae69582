"""Request-log entries and the Arrow tables the writer builds from them, off the request path.

A handler hands over an :class:`Entry`: the arrays it already has (typed model
inputs, scores, decisions), no per-row work. The writer thread groups the
entries of one model version, route, protocol and status and turns each group
into one Arrow table column by column (NumPy arrays become Arrow arrays without
a Python object per value), then spools it.

The table of a model version has a fixed schema: the first table built for a
version fixes each column's type (``f_<input>``, ``e_<key>``, ``probabilities``)
and later tables are cast to it. An entry that does not fit (a value of another
type, arrays of the wrong length, an answer of an unexpected shape) cannot jam
the log: its group is rebuilt entry by entry and whatever still fails goes to a
quarantine table, with the reason, instead of the spool's normal chunks.

Answers: a 1-d score per row is ``prediction`` (binary P(positive), a
regression's value); an ``(n, k)`` array of class probabilities is
``probabilities`` (a typed ``list<double>`` column in class order), with
``prediction`` the winning class's probability and ``predicted_label`` its label
(the model signature's classes, or the labels the handler passed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ctloop.core.secrets import mask_secrets

if TYPE_CHECKING:
    import pyarrow as pa

    from ctloop.models.flavors import LoadedModel

__all__ = ["QUARANTINE", "Built", "Entry", "SchemaBook", "build_tables", "quarantine_table",
           "table_quarantine"]

log = logging.getLogger("ctloop.requestlog")

QUARANTINE = "quarantine"
_RECORD_CHARS = 4000  # what of an unwritable entry the quarantine keeps, as text


@dataclass(frozen=True)
class Entry:
    """The rows of one request answered (or refused) on one route."""

    model_name: str
    model_version: int
    route: str
    protocol: str
    ts: datetime
    latency_ms: float
    request_ids: list[str]
    scores: np.ndarray  # (n,) or (n, k) class probabilities
    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    entity: Mapping[str, Sequence[Any] | np.ndarray] = field(default_factory=dict)
    row_ids: list[str | None] | None = None
    decisions: np.ndarray | None = None
    served: bool = True
    status: int = 200
    error: str = ""
    missing: tuple[str, ...] = ()
    model: LoadedModel | None = None  # scores outliers, labels classes; once per group
    labels: np.ndarray | Sequence[Any] | None = None  # predicted class labels, when known
    outlier_scores: np.ndarray | None = None  # already scored (batch scoring), else by ``model``

    @property
    def rows(self) -> int:
        return len(self.request_ids)

    @property
    def acknowledged(self) -> bool:
        """An answer the caller gets as a success: it must be logged before it is lost.
        (Shadow and explain rows are not answers: they never make a request fail.)"""
        return self.status < 400 and self.served

    def key(self) -> tuple[Any, ...]:
        return (self.model_name, self.model_version, self.route, self.protocol, self.served,
                self.status, self.error, self.missing, tuple(self.inputs), tuple(self.entity),
                self.decisions is None, self.labels is None, np.ndim(self.scores),
                self.outlier_scores is None, id(self.model))


class SchemaBook:
    """The fixed column types of each model version's tables (first table wins)."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, int], dict[str, pa.DataType]] = {}

    def conform(self, model: str, version: int, columns: dict[str, pa.Array]) -> None:
        """Cast ``columns`` to the version's types in place; new columns fix theirs."""
        import pyarrow as pa

        known = self._types.setdefault((model, version), {})
        for name, array in columns.items():
            want = known.get(name)
            if want is None or pa.types.is_null(want):
                if not pa.types.is_null(array.type) or want is None:
                    known[name] = array.type
            elif array.type != want:
                try:
                    columns[name] = array.cast(want)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                    raise ValueError(
                        f"column {name} of {model} v{version} is {want}, these values are "
                        f"{array.type} ({exc})") from exc

    def forget(self, model: str, version: int) -> None:
        self._types.pop((model, version), None)


@dataclass
class Built:
    """What one drain became: tables to spool (one per group) and the quarantined entries."""

    tables: list[pa.Table] = field(default_factory=list)
    quarantined: list[tuple[Entry, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables)


def build_tables(entries: Sequence[Entry], book: SchemaBook) -> Built:
    """One table per group of entries; entries that cannot be written are set aside."""
    groups: dict[tuple[Any, ...], list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.key(), []).append(entry)
    built = Built()
    for group in groups.values():
        try:
            built.tables.append(_group_table(group, book))
            continue
        except Exception as exc:  # find the entry that does not fit; the others go on
            if len(group) == 1:
                built.quarantined.append((group[0], _reason(exc)))
                continue
        for entry in group:
            try:
                built.tables.append(_group_table([entry], book))
            except Exception as exc:
                built.quarantined.append((entry, _reason(exc)))
    return built


def _reason(exc: Exception) -> str:
    return mask_secrets(f"{type(exc).__name__}: {exc}")[:1000]


def _group_table(group: list[Entry], book: SchemaBook) -> pa.Table:
    import pyarrow as pa

    from ctloop.requestlog.tables import base_types

    first = group[0]
    sizes = np.array([e.rows for e in group], dtype=np.int64)
    n = int(sizes.sum())
    types = base_types()
    scores = _stack([np.asarray(e.scores) for e in group], sizes, "scores")
    columns: dict[str, pa.Array] = {
        "request_id": pa.array([r for e in group for r in e.request_ids], pa.string()),
        "model_name": _const(first.model_name, n, types["model_name"]),
        "model_version": _const(int(first.model_version), n, types["model_version"]),
        "route": _const(first.route, n, types["route"]),
        "ts": pa.array(np.repeat(np.array([_micros(e.ts) for e in group], dtype=np.int64),
                                 sizes)).view(types["ts"]),
    }
    extra: dict[str, pa.Array] = {}
    try:
        scores = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("the answer's scores are not numbers, one or one per class for each "
                         f"row ({type(exc).__name__}: {exc})") from exc
    if scores.ndim == 1:
        columns["prediction"] = pa.array(scores, pa.float64(), from_pandas=True)
    elif scores.ndim == 2:
        probs = np.ascontiguousarray(scores)
        columns["prediction"] = pa.array(probs.max(axis=1) if probs.shape[1] else
                                         np.full(n, np.nan), pa.float64(), from_pandas=True)
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * probs.shape[1])
        extra["probabilities"] = pa.ListArray.from_arrays(offsets, pa.array(probs.reshape(-1)))
        labels = _labels(group, probs, sizes)
        if labels is not None:
            extra["predicted_label"] = labels
    else:
        raise ValueError(f"an answer of shape {scores.shape} has no log column; "
                         "expected (rows,) or (rows, classes)")
    columns["latency_ms"] = pa.array(np.repeat(
        np.array([e.latency_ms for e in group], dtype=np.float64), sizes))
    columns["served"] = _const(bool(first.served), n, types["served"])
    columns["status"] = _const(int(first.status), n, types["status"])
    columns["error"] = _const(mask_secrets(first.error) if first.error else "", n,
                              types["error"])
    columns["protocol"] = _const(first.protocol, n, types["protocol"])
    if any(e.row_ids is not None for e in group):
        columns["row_id"] = pa.array(
            [None if r is None else str(r) for e in group
             for r in (e.row_ids if e.row_ids is not None else [None] * e.rows)], pa.string())
    else:
        columns["row_id"] = pa.nulls(n, pa.string())
    if first.decisions is not None:
        decisions = _stack([np.asarray(e.decisions) for e in group
                            if e.decisions is not None], sizes, "decisions")
        columns["decision"] = pa.array(decisions, from_pandas=True).cast(types["decision"])
    else:
        columns["decision"] = pa.nulls(n, types["decision"])
    columns["outlier_score"] = _outliers(group, n)
    names = pa.array(list(first.missing) * n, pa.string())
    columns["missing"] = pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32) * len(first.missing)), names)
    for name in first.inputs:
        extra[f"f_{name}"] = _values([e.inputs[name] for e in group], sizes, f"input {name!r}")
    for name in first.entity:
        extra[f"e_{name}"] = _values([e.entity[name] for e in group], sizes, f"key {name!r}")
    book.conform(first.model_name, int(first.model_version), extra)
    columns.update(extra)
    return pa.table(columns)


def _const(value: object, n: int, kind: pa.DataType) -> pa.Array:
    import pyarrow as pa

    return pa.repeat(pa.scalar(value, kind), n)


def _micros(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // _MICRO


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def _stack(arrays: list[np.ndarray], sizes: np.ndarray, what: str) -> np.ndarray:
    """The entries' arrays end to end, each checked to hold one value per row of its entry."""
    try:
        lengths = np.fromiter(map(len, arrays), np.int64, len(arrays))
    except TypeError:  # a 0-d array: one value for the whole request
        raise ValueError(f"{what} hold a single value, not one per row") from None
    if not np.array_equal(lengths, sizes):
        bad = int(np.flatnonzero(lengths != sizes)[0])
        raise ValueError(f"{what} hold {arrays[bad].shape} values for {int(sizes[bad])} rows")
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _values(parts: list[Sequence[Any] | np.ndarray], sizes: np.ndarray, what: str) -> pa.Array:
    """One typed column of the group's values (NaN and NaT as nulls, as pandas means)."""
    import pyarrow as pa

    arrays = [p if isinstance(p, np.ndarray) else np.asarray(p, dtype=object) for p in parts]
    values = _stack(arrays, sizes, what)
    if values.ndim != 1:
        raise ValueError(f"{what} holds {values.ndim}-d values; the log keeps one per row")
    kind = values.dtype.kind
    if kind == "f":  # NaN as null, as pandas means; no pandas round trip
        mask = np.isnan(values)
        return pa.array(values, mask=mask if mask.any() else None)
    if kind in "iub":
        return pa.array(values)
    if kind in "US":
        return pa.array(values.astype(object), pa.string())
    if kind == "O":
        try:
            return pa.array(values)  # None is null; strings, ints, floats as they are
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return pa.array(values, from_pandas=True)


def _labels(group: list[Entry], probs: np.ndarray, sizes: np.ndarray) -> pa.Array | None:
    import pyarrow as pa

    first = group[0]
    if first.labels is not None:
        given = _stack([np.asarray(e.labels, dtype=object) for e in group], sizes, "labels")
        return pa.array([None if v is None else str(v) for v in given.tolist()], pa.string())
    classes = _classes(first.model)
    if classes is None or len(classes) != probs.shape[1]:
        return None
    names = np.array([str(c) for c in classes], dtype=object)
    return pa.array(names[probs.argmax(axis=1)], pa.string())


def _classes(model: LoadedModel | None) -> list[Any] | None:
    signature = getattr(model, "signature", None)
    classes = getattr(signature, "classes", None)
    return list(classes) if classes else None


def _outliers(group: list[Entry], n: int) -> pa.Array:
    """Outlier scores of the group's rows when the model keeps a detector (else nulls)."""
    import pyarrow as pa

    if group[0].outlier_scores is not None:
        sizes = np.array([e.rows for e in group], dtype=np.int64)
        given = _stack([np.asarray(e.outlier_scores, dtype=np.float64) for e in group
                        if e.outlier_scores is not None], sizes, "outlier scores")
        return pa.array(given, pa.float64(), from_pandas=True)
    model = group[0].model
    if model is None or not group[0].inputs or getattr(model, "_outlier_detector", None) is None:
        return pa.nulls(n, pa.float64())
    import pandas as pd  # only for a model with a detector

    names = list(group[0].inputs)
    frame = pd.DataFrame({k: np.concatenate([np.asarray(e.inputs[k]) for e in group])
                          for k in names})
    try:
        scores = model.outlier_scores(frame)
    except Exception as exc:  # a detector that cannot score these rows: the rows still log
        log.debug("outlier scores failed: %s", exc)
        return pa.nulls(n, pa.float64())
    if scores is None:
        return pa.nulls(n, pa.float64())
    return pa.array(np.asarray(scores, dtype=np.float64), pa.float64())


def quarantine_table(items: Sequence[tuple[Entry, str]]) -> pa.Table:
    """Entries that could not be written, one row per request row, with the reason and text."""
    import pyarrow as pa

    from ctloop.requestlog.tables import base_types

    types = base_types()
    rows: dict[str, list[Any]] = {k: [] for k in (
        "request_id", "model_name", "model_version", "route", "ts", "protocol", "served",
        "status", "error", "reason", "record")}
    for entry, reason in items:
        ids = list(entry.request_ids) or [""]
        text = _describe(entry)
        for rid in ids:
            rows["request_id"].append(str(rid))
            rows["model_name"].append(str(entry.model_name))
            rows["model_version"].append(_int(entry.model_version))
            rows["route"].append(str(entry.route))
            rows["ts"].append(entry.ts if isinstance(entry.ts, datetime) else None)
            rows["protocol"].append(str(entry.protocol))
            rows["served"].append(bool(entry.served))
            rows["status"].append(_int(entry.status))
            rows["error"].append(mask_secrets(str(entry.error)))
            rows["reason"].append(reason)
            rows["record"].append(text)
    kinds = {**types, "reason": pa.string(), "record": pa.string()}
    table = pa.table({k: pa.array(v, kinds[k]) for k, v in rows.items()})
    return table.replace_schema_metadata({"ctloop.kind": QUARANTINE})


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError, OverflowError):
        return None


def _describe(entry: Entry) -> str:
    """The entry as text for a person reading the quarantine (secrets masked, cut short)."""
    parts = {
        "scores": _short(entry.scores), "inputs": {k: _short(v) for k, v in entry.inputs.items()},
        "entity": {k: _short(v) for k, v in entry.entity.items()},
        "decisions": _short(entry.decisions), "labels": _short(entry.labels),
        "row_ids": _short(entry.row_ids), "latency_ms": entry.latency_ms,
    }
    return mask_secrets(repr(parts))[:_RECORD_CHARS]


def _short(value: object) -> str:
    try:
        text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    except Exception as exc:  # a value that cannot even be shown
        text = f"<unprintable {type(value).__name__}: {exc}>"
    return text[:500]


def table_quarantine(table: pa.Table, exc: Exception) -> pa.Table:
    """A built table the spool refused, as quarantine rows (text)."""
    import pyarrow as pa

    from ctloop.requestlog.tables import base_types

    reason = f"{type(exc).__name__}: {exc}"[:1000]
    n = table.num_rows
    text = [str(r)[:4000] for r in _rows_as_text(table)]

    def column(name: str, kind: pa.DataType) -> pa.Array:
        if name in table.column_names:
            try:
                return table[name].combine_chunks().cast(kind)
            except Exception:
                pass
        return pa.nulls(n, kind)

    types = base_types()
    out = pa.table({
        **{k: column(k, types[k]) for k in ("request_id", "model_name", "model_version",
                                             "route", "ts", "protocol", "served", "status",
                                             "error")},
        "reason": pa.array([reason] * n, pa.string()),
        "record": pa.array(text, pa.string()),
    })
    return out.replace_schema_metadata({"ctloop.kind": QUARANTINE})


def _rows_as_text(table: pa.Table) -> list[object]:
    try:
        return list(table.to_pylist())
    except Exception as exc:
        return [f"<unreadable row: {exc}>"] * table.num_rows
