"""Prediction records as Arrow tables: the columns every segment holds.

Base columns first, then one ``f_<name>`` column per model input and one
``e_<name>`` per entity key. Tables of different requests (other features,
other types) are concatenated by name, promoting types, and falling back to
text for a column whose types cannot be reconciled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ctloop.requestlog.records import PredictionRecord

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["BASE_COLUMNS", "concat_tables", "empty_frame", "records_to_table", "table_records",
           "text_column", "time_range"]

BASE_COLUMNS = (
    "request_id", "model_name", "model_version", "route", "ts", "prediction",
    "latency_ms", "served", "status", "error", "protocol", "row_id", "decision",
    "outlier_score", "missing",
)


def base_types() -> dict[str, pa.DataType]:
    import pyarrow as pa

    return {
        "request_id": pa.string(), "model_name": pa.string(), "model_version": pa.int64(),
        "route": pa.string(), "ts": pa.timestamp("us", tz="UTC"), "prediction": pa.float64(),
        "latency_ms": pa.float64(), "served": pa.bool_(), "status": pa.int32(),
        "error": pa.string(), "protocol": pa.string(), "row_id": pa.string(),
        "decision": pa.int64(), "outlier_score": pa.float64(), "missing": pa.list_(pa.string()),
    }


def records_to_table(records: Sequence[PredictionRecord]) -> pa.Table:
    """Records as one Arrow table (a column per field, ``f_*`` and ``e_*`` per key)."""
    import pyarrow as pa

    columns = _base_columns(records)
    columns.update(_keyed_columns([r.features for r in records], "f_"))
    columns.update(_keyed_columns([r.entity for r in records], "e_"))
    return pa.table(columns)


def _base_columns(records: Sequence[PredictionRecord]) -> dict[str, pa.Array]:
    """The :data:`BASE_COLUMNS` of the records, typed (the record fields of those names)."""
    import pyarrow as pa

    types = base_types()
    values: dict[str, list[Any]] = {  # a comprehension per field: attrgetter is 6 % slower
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
    return {k: pa.array(v, types[k]) for k, v in values.items()}


def _keyed_columns(dicts: Sequence[dict[str, Any]], prefix: str) -> dict[str, pa.Array]:
    """One ``<prefix><key>`` column per key of any of ``dicts`` (in first-seen order);
    null where a record lacks it, text where its types do not mix."""
    names: dict[str, None] = {}
    for d in dicts:
        names.update(dict.fromkeys(d))
    return {f"{prefix}{name}": any_column([d.get(name) for d in dicts]) for name in names}


def table_records(table: pa.Table) -> list[PredictionRecord]:
    """Log rows back as records (for a ``PredictionLog`` that only takes records)."""
    out = []
    for row in table.to_pylist():
        features = {k[2:]: v for k, v in row.items() if k.startswith("f_")}
        entity = {k[2:]: v for k, v in row.items() if k.startswith("e_")}
        prediction = row.get("prediction")
        out.append(PredictionRecord(
            request_id=row["request_id"], model_name=row["model_name"],
            model_version=row["model_version"], route=row["route"], ts=row["ts"],
            prediction=float("nan") if prediction is None else prediction,
            features=features, entity=entity, latency_ms=row["latency_ms"],
            served=row["served"], status=row["status"], error=row["error"],
            protocol=row["protocol"], row_id=row["row_id"], decision=row["decision"],
            outlier_score=row["outlier_score"], missing=tuple(row["missing"] or ()),
        ))
    return out


def any_column(values: Sequence[Any]) -> pa.Array:
    """An Arrow column of ``values``; mixed types are kept as text."""
    import pyarrow as pa

    try:
        return pa.array(values, from_pandas=True)  # NaN and NaT are nulls, as pandas means
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return text_column(values)


def text_column(values: Sequence[Any]) -> pa.Array:
    import pyarrow as pa

    return pa.array([None if v is None else str(v) for v in values], pa.string())


def concat_tables(tables: Sequence[pa.Table], *, text_fallback: bool = True) -> pa.Table:
    """One table of ``tables`` by column name; irreconcilable types become text (or raise,
    without ``text_fallback``)."""
    import pyarrow as pa

    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        if not text_fallback:
            raise
    seen: dict[str, pa.DataType] = {}
    clash: set[str] = set()
    for table in tables:
        for f in table.schema:
            if f.name in seen and seen[f.name] != f.type and not pa.types.is_null(f.type) \
                    and not pa.types.is_null(seen[f.name]):
                clash.add(f.name)
            seen.setdefault(f.name, f.type)
    fixed = []
    for table in tables:
        for name in clash & set(table.column_names):
            i = table.column_names.index(name)
            table = table.set_column(i, name, text_column(table[name].to_pylist()))
        fixed.append(table)
    return pa.concat_tables(fixed, promote_options="permissive")


def empty_frame(with_labels: bool) -> pd.DataFrame:
    """The frame ``read`` returns for an empty log: the base columns, typed."""
    import pyarrow as pa

    types = base_types()
    frame = pa.schema([(k, types[k]) for k in BASE_COLUMNS]).empty_table().to_pandas()
    if with_labels:
        import pandas as pd

        frame["label"] = pd.Series(dtype="float64")
        frame["labelled_at"] = pd.Series(dtype="datetime64[us, UTC]")
    empty: pd.DataFrame = frame
    return empty


_EPOCH = datetime(1970, 1, 1)
_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}  # microseconds; nanoseconds are cut


def time_range(column: pa.ChunkedArray) -> tuple[datetime | None, datetime | None]:
    """The oldest and newest time of a timestamp column (None, None if all null).

    With NumPy over the column's buffers: ``pyarrow.compute`` (and the pandas it
    loads) cost the request log's writer process ~9 MB for these two numbers
    (issue 21). Another column type is left to ``pyarrow.compute``."""
    import numpy as np
    import pyarrow as pa

    if not pa.types.is_timestamp(column.type):
        import pyarrow.compute as pc

        return pc.min(column).as_py(), pc.max(column).as_py()
    lows, highs = [], []
    for chunk in column.chunks:
        n = len(chunk)
        if chunk.null_count == n:
            continue
        validity, data = chunk.buffers()[:2]
        values = np.frombuffer(data, np.int64, n + chunk.offset)[chunk.offset:]
        if chunk.null_count:
            bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
            values = values[bits[chunk.offset:chunk.offset + n].astype(bool)]
        lows.append(int(values.min()))
        highs.append(int(values.max()))
    if not lows:
        return None, None
    unit = column.type.unit
    tz = UTC if column.type.tz else None

    def when(value: int) -> datetime:
        us = value // 1000 if unit == "ns" else value * _PER_UNIT[unit]
        return (_EPOCH + timedelta(microseconds=us)).replace(tzinfo=tz)

    return when(min(lows)), when(max(highs))
