"""The request log's two row builders give exactly what they gave before they were split.

``pack_group`` and ``records_to_table`` were each one long function (radon D); they were
split into helpers for review. The reference copies below are the code as it was (same
helpers), and every case compares the whole output: each field of the pack (dtype,
shape, values), and the Arrow tables' schema and ``equals``. Cases: 1, 2 and 100 rows;
float (with NaN), int, bool, string with nulls and category inputs; tensor inputs and
outputs (digests and shapes); multiclass probabilities with and without labels;
regression; explain outputs; missing columns; a model with no features logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ctloop.requestlog import entries as E
from ctloop.requestlog.entries import (
    Entry,
    ModelFacts,
    Packed,
    SchemaBook,
    pack_group,
    packed_table,
)
from ctloop.requestlog.records import PredictionRecord
from ctloop.requestlog.tables import any_column, base_types, records_to_table


def _stack(arrays: list[np.ndarray], counts: list[int], what: str) -> np.ndarray:
    """The pack's array join as it was (commit bd29cb1)."""
    lengths = [len(a) for a in arrays]
    if lengths != counts:
        bad = next(i for i, (a, b) in enumerate(zip(lengths, counts, strict=True)) if a != b)
        raise ValueError(f"{what} hold {arrays[bad].shape} values for {counts[bad]} rows")
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _column(parts: list[Any], counts: list[int], what: str) -> np.ndarray:
    arrays = [p if type(p) is np.ndarray else np.asarray(p, dtype=object) for p in parts]
    values = _stack(arrays, counts, what)
    if values.ndim != 1:
        raise ValueError(f"{what} holds {values.ndim}-d values; the log keeps one per row")
    return values


def _reference_pack_group(group: Sequence[Entry]) -> Packed:
    """``pack_group`` as it was before the split (commit bd29cb1)."""
    first = group[0]
    counts = [len(e.request_ids) for e in group]
    sizes = np.array(counts, dtype=np.int64)
    if first.tensors is not None or first.output_tensors is not None:
        group = [E._summarized(e) for e in group]
        first = group[0]
    return Packed(
        model_name=first.model_name, model_version=int(first.model_version),
        route=first.route, protocol=first.protocol, served=bool(first.served),
        status=int(first.status), error=first.error, missing=first.missing, sizes=sizes,
        request_ids=[r for e in group for r in e.request_ids],
        ts_us=np.array([E._micros(e.ts) for e in group], dtype=np.int64),
        latency_ms=np.array([e.latency_ms for e in group], dtype=np.float64),
        scores=_stack([np.asarray(e.scores) for e in group], counts, "scores"),
        inputs={name: _column([e.inputs[name] for e in group], counts, f"input {name!r}")
                for name in first.inputs},
        entity={name: _column([e.entity[name] for e in group], counts, f"key {name!r}")
                for name in first.entity},
        outputs={name: _column([e.outputs[name] for e in group], counts, f"output {name!r}")
                 for name in first.outputs},
        row_ids=[None if r is None else str(r) for e in group
                 for r in (e.row_ids if e.row_ids is not None else [None] * e.rows)]
        if any(e.row_ids is not None for e in group) else None,
        decisions=None if first.decisions is None else _stack(
            [np.asarray(e.decisions) for e in group], counts, "decisions"),
        labels=None if first.labels is None else _stack(
            [np.asarray(e.labels, dtype=object) for e in group], counts, "labels"),
        outlier_scores=None if first.outlier_scores is None else _stack(
            [np.asarray(e.outlier_scores, dtype=np.float64) for e in group], counts,
            "outlier scores"),
        model=first.model,
    )


def _reference_records_to_table(records: Sequence[PredictionRecord]) -> pa.Table:
    """``records_to_table`` as it was before the split (commit bd29cb1)."""
    types = base_types()
    values: dict[str, list[Any]] = {
        "request_id": [r.request_id for r in records],
        "model_name": [r.model_name for r in records],
        "model_version": [r.model_version for r in records],
        "route": [r.route for r in records],
        "ts": [r.ts for r in records],
        "prediction": [r.prediction for r in records],
        "latency_ms": [r.latency_ms for r in records],
        "served": [r.served for r in records],
        "status": [r.status for r in records],
        "error": [r.error for r in records],
        "protocol": [r.protocol for r in records],
        "row_id": [r.row_id for r in records],
        "decision": [r.decision for r in records],
        "outlier_score": [r.outlier_score for r in records],
        "missing": [list(r.missing) for r in records],
    }
    columns: dict[str, pa.Array] = {k: pa.array(v, types[k]) for k, v in values.items()}
    for prefix, attr in (("f_", "features"), ("e_", "entity")):
        dicts = [getattr(r, attr) for r in records]
        names: dict[str, None] = {}
        for d in dicts:
            names.update(dict.fromkeys(d))
        for name in names:
            columns[f"{prefix}{name}"] = any_column([d.get(name) for d in dicts])
    return pa.table(columns)


T0 = datetime(2026, 12, 7, 17, 0, tzinfo=UTC)
SIZES = {"one": [1], "two": [1, 1], "hundred": [40, 1, 59]}


def _inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    f[::3] = np.nan
    text = np.array([None if i % 4 == 0 else f"s{i}" for i in range(n)], dtype=object)
    category = np.asarray(pd.Categorical(["a", "b", "c"] * n)[:n])
    return {"f": f, "i": rng.integers(0, 9, size=n), "b": rng.random(n) > 0.5,
            "s": text, "c": category}


def _entries(case: str, sizes: list[int]) -> list[Entry]:
    out = []
    for k, n in enumerate(sizes):
        rng = np.random.default_rng(k)
        common: dict[str, Any] = {
            "model_name": "m", "model_version": 3, "route": "champion", "protocol": "v1",
            "ts": T0 + timedelta(seconds=k), "latency_ms": 1.5 + k,
            "request_ids": [f"r{k}-{i}" for i in range(n)],
            "entity": {"user": [f"u{i}" if i % 2 else None for i in range(n)]},
        }
        if case == "binary":
            out.append(Entry(**common, scores=rng.random(n), inputs=_inputs(n, k),
                             decisions=(rng.random(n) > 0.5).astype(np.int64),
                             row_ids=None if k == 1 else [f"id{i}" if i % 3 else None
                                                          for i in range(n)],
                             outlier_scores=rng.random(n)))
        elif case == "regression":
            out.append(Entry(**common, scores=rng.normal(size=n), inputs=_inputs(n, k)))
        elif case == "multiclass_classes":
            out.append(Entry(**common, scores=rng.dirichlet([1, 1, 1], size=n),
                             inputs=_inputs(n, k), model=ModelFacts(classes=("x", "y", "z"))))
        elif case == "multiclass_labels":
            out.append(Entry(**common, scores=rng.dirichlet([1, 1, 1], size=n),
                             inputs=_inputs(n, k),
                             labels=np.array([None if i == 0 else "y" for i in range(n)],
                                             dtype=object)))
        elif case == "explain":
            out.append(Entry(**{**common, "route": "explain"}, served=False,
                             scores=rng.random(n), inputs=_inputs(n, k),
                             outputs={"shap_f": rng.normal(size=n),
                                      "shap_i": rng.normal(size=n)}))
        elif case == "missing":
            out.append(Entry(**common, scores=rng.random(n), inputs=_inputs(n, k),
                             missing=("f", "s"), status=422, error="input f missing"))
        elif case == "no_features":
            out.append(Entry(**{**common, "entity": {}}, scores=rng.random(n)))
        elif case == "tensors":
            images = rng.integers(0, 255, size=(n, 3, 4, 4)).astype(np.uint8)
            if n > 1:
                images[1] = images[0]
            out.append(Entry(**{**common, "protocol": "v2"}, scores=rng.random(n),
                             tensors={"image": images},
                             output_tensors={"logits": rng.normal(size=(n, 10)),
                                             "big": rng.normal(size=(n, 100))}))
    return out


CASES = ["binary", "regression", "multiclass_classes", "multiclass_labels", "explain",
         "missing", "no_features", "tensors"]


def _canon(value: Any) -> Any:
    """A comparable form of a pack field: arrays by dtype, shape and exact values."""
    if isinstance(value, np.ndarray):
        body = repr(value.tolist()) if value.dtype.kind == "O" else value.tobytes()
        return ("ndarray", value.dtype.str, value.shape, body)
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in value.items()}, list(value)
    if isinstance(value, list):
        return [_canon(v) for v in value]
    return type(value).__name__, repr(value)


def _same_table(got: pa.Table, want: pa.Table) -> None:
    assert got.schema.equals(want.schema, check_metadata=True), (got.schema, want.schema)
    assert got.equals(want)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("rows", list(SIZES))
def test_pack_group_is_unchanged(case: str, rows: str) -> None:
    group = _entries(case, SIZES[rows])
    got, want = pack_group(group), _reference_pack_group(group)
    assert got.rows == sum(SIZES[rows])
    for name in Packed.__dataclass_fields__:
        assert _canon(getattr(got, name)) == _canon(getattr(want, name)), name
    _same_table(packed_table(got, SchemaBook()), packed_table(want, SchemaBook()))


def test_pack_group_refuses_as_before() -> None:
    bad = _entries("binary", [2, 3])
    bad[1].scores = np.zeros(2)
    with pytest.raises(ValueError, match="scores hold") as got:
        pack_group(bad)
    with pytest.raises(ValueError, match="scores hold") as want:
        _reference_pack_group(bad)
    assert str(got.value) == str(want.value)


def _records(n: int) -> list[PredictionRecord]:
    out = []
    for i in range(n):
        features: dict[str, Any] = {"f": float(i) / 3 if i % 5 else float("nan"),
                                    "i": i, "b": i % 2 == 0,
                                    "s": None if i % 4 == 0 else f"s{i}",
                                    "c": pd.Categorical(["a", "b"])[i % 2]}
        if i % 3 == 1:
            del features["s"]  # a missing column
        if i % 7 == 2:
            features["mixed"] = "text" if i % 2 else 5  # irreconcilable types: text
        out.append(PredictionRecord(
            request_id=f"r{i}", model_name="m", model_version=2,
            route="champion" if i % 2 else "shadow", ts=T0 + timedelta(seconds=i),
            prediction=float(i) / 10, features=features,
            entity={"user": f"u{i}"} if i % 2 else {}, latency_ms=2.0, served=i % 2 == 1,
            status=200 if i % 9 else 422, error="" if i % 9 else "bad", protocol="v2",
            row_id=None if i % 3 else f"id{i}", decision=None if i % 4 else 1,
            outlier_score=None if i % 2 else 0.5, missing=("s",) if i % 3 == 1 else ()))
    return out


@pytest.mark.parametrize("n", [1, 2, 100])
def test_records_to_table_is_unchanged(n: int) -> None:
    records = _records(n)
    _same_table(records_to_table(records), _reference_records_to_table(records))


def test_records_to_table_no_features_is_unchanged() -> None:
    records = [PredictionRecord(request_id=f"r{i}", model_name="m", model_version=1,
                                route="champion", ts=T0, prediction=0.1) for i in range(3)]
    got = records_to_table(records)
    _same_table(got, _reference_records_to_table(records))
    assert not [c for c in got.column_names if c.startswith(("f_", "e_"))]
