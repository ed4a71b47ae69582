"""The prediction log on parquet files, read with DuckDB.

Serving appends records from request handlers, so ``append`` only copies them
into a locked in-memory buffer; the buffer becomes one parquet part file per
day when it reaches ``flush_rows`` rows, on ``flush()`` and on ``close()``.
Part files are written to a hidden temporary name and renamed, so a reader
never sees half a file. Layout under the log's folder::

    date=2013-07-01/part-<ns>-<rand>.parquet   predictions (f_<feature>, e_<entity>)
    labels/part-<ns>-<rand>.parquet             request_id, label, labelled_at
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from ctloop.core.errors import ConfigError, StoreError, UserInputError
from ctloop.monitoring.base import PredictionLog, PredictionRecord

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ctloop.core.settings import Settings

__all__ = ["BASE_COLUMNS", "ParquetPredictionLog", "open_prediction_log"]

BASE_COLUMNS = (
    "request_id", "model_name", "model_version", "route", "ts", "prediction",
    "latency_ms", "served",
)
_PREDICTIONS_GLOB = "date=*/part-*.parquet"
_LABELS_GLOB = "labels/part-*.parquet"


def open_prediction_log(
    url: str | Path | None = None,
    *,
    settings: Settings | None = None,
    flush_rows: int = 5000,
) -> ParquetPredictionLog:
    """The prediction log at ``url`` (a folder path or ``file://`` URL).

    Without a URL: ``predictions/`` under the settings' ``home``.
    """
    if url is None:
        from ctloop.core.settings import load_settings

        settings = settings or load_settings()
        return ParquetPredictionLog(settings.home / "predictions", flush_rows=flush_rows)
    text = str(url)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:  # "C:" is a drive, not a scheme
        raise ConfigError(
            f"Prediction log URL {text!r} uses the unsupported scheme {parsed.scheme!r}. "
            "Use a folder path or a file:// URL."
        )
    else:
        path = Path(text)
    return ParquetPredictionLog(path, flush_rows=flush_rows)


class ParquetPredictionLog(PredictionLog):
    """Append-only prediction log: date-partitioned parquet parts plus label parts."""

    def __init__(self, root: str | Path, *, flush_rows: int = 5000) -> None:
        if flush_rows < 1:
            raise UserInputError(f"flush_rows must be >= 1. Got {flush_rows!r}.")
        self.root = Path(root).expanduser().resolve()
        self.url = self.root.as_uri()
        self.flush_rows = flush_rows
        self._buffer: list[PredictionRecord] = []
        self._lock = threading.Lock()  # guards the buffer
        self._write_lock = threading.Lock()  # one writer at a time: read-your-writes
        self._closed = False
        _check_folder(self.root)

    def __repr__(self) -> str:
        return f"ParquetPredictionLog({str(self.root)!r})"

    def __enter__(self) -> ParquetPredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Buffer records; writes a part file when the buffer is full."""
        if self._closed:
            raise UserInputError(f"The prediction log {self.root} is closed; open it again.")
        if not records:
            return
        with self._lock:
            self._buffer.extend(records)
            full = len(self._buffer) >= self.flush_rows
        if full:
            self.flush()

    def flush(self) -> None:
        """Write everything buffered so far (one part file per day)."""
        with self._write_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
            if batch:
                self._write_predictions(batch)

    def close(self) -> None:
        self.flush()
        self._closed = True

    def pending(self) -> int:
        """Rows buffered but not yet written."""
        with self._lock:
            return len(self._buffer)

    def _write_predictions(self, batch: list[PredictionRecord]) -> None:
        import pyarrow.compute as pc

        table = records_to_table(batch)
        days = pc.strftime(table["ts"], format="%Y-%m-%d")
        for day in pc.unique(days).to_pylist():
            part = table.filter(pc.equal(days, day))
            _write_atomic(part, self.root / f"date={day}")

    def add_labels(self, labels: pd.DataFrame) -> int:
        """Store ground truth (``request_id``, ``label``, optional ``labelled_at``)."""
        import pandas as pd
        import pyarrow as pa

        missing = {"request_id", "label"} - set(labels.columns)
        if missing:
            raise UserInputError(
                f"Labels need the columns 'request_id' and 'label'; missing {sorted(missing)}. "
                f"Got columns {list(labels.columns)}."
            )
        if labels.empty:
            return 0
        try:
            label = pd.to_numeric(labels["label"]).astype("float64")
        except (TypeError, ValueError) as exc:
            raise UserInputError(f"Labels must be numeric (0/1 or a number): {exc}.") from exc
        if "labelled_at" in labels.columns:
            at = pd.to_datetime(labels["labelled_at"], utc=True)
        else:
            at = pd.Series(pd.Timestamp.now(tz="UTC"), index=labels.index)
        table = pa.table({
            "request_id": pa.array(labels["request_id"].astype(str).to_numpy(), pa.string()),
            "label": pa.array(label.to_numpy(), pa.float64()),
            "labelled_at": pa.array(at, pa.timestamp("us", tz="UTC")),
        })
        _write_atomic(table, self.root / "labels")
        return table.num_rows

    # -- reading -----------------------------------------------------------

    def read(
        self,
        *,
        model_name: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        with_labels: bool = False,
        limit: int | None = None,
        route: str | None = None,
    ) -> pd.DataFrame:
        """Records in ``[start, end)`` ordered by ``ts``; flushes this writer's buffer first."""
        self.flush()
        import duckdb

        files = sorted(self.root.glob(_PREDICTIONS_GLOB))
        if not files:
            return _empty_frame(with_labels)
        where, args = [], []
        for column, op, value in (("ts", ">=", start), ("ts", "<", end)):
            if value is not None:
                where.append(f"{column} {op} ?")
                args.append(_utc(value))
        if start is not None:  # prune whole days by their folder name
            where.append("date >= ?")
            args.append(_utc(start).strftime("%Y-%m-%d"))
        if end is not None:
            where.append("date <= ?")
            args.append(_utc(end).strftime("%Y-%m-%d"))
        for column, value in (("model_name", model_name), ("route", route)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = (
            "SELECT * EXCLUDE (date) FROM read_parquet(?, hive_partitioning = true, "
            "union_by_name = true)"
        )
        params: list[Any] = [[str(f) for f in files]]
        if where:
            sql += " WHERE " + " AND ".join(where)
        params += args
        sql = f"SELECT * FROM ({sql}) p"
        labels = sorted(self.root.glob(_LABELS_GLOB)) if with_labels else []
        if with_labels and labels:
            sql += (
                " LEFT JOIN (SELECT request_id AS _rid, arg_max(label, labelled_at) AS label, "
                "max(labelled_at) AS labelled_at FROM read_parquet(?) GROUP BY request_id) l "
                "ON p.request_id = l._rid"
            )
            params.append([str(f) for f in labels])
        sql += " ORDER BY ts, request_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            frame = con.sql(sql, params=params).to_arrow_table().to_pandas()
        except duckdb.Error as exc:
            raise StoreError(
                f"Cannot read the prediction log at {self.root}: {exc}. "
                "Check that the folder holds only ctloop part files and is readable."
            ) from exc
        finally:
            con.close()
        if "_rid" in frame.columns:
            frame = frame.drop(columns="_rid")
        elif with_labels:
            frame["label"] = float("nan")
            frame["labelled_at"] = None
        return frame


# -- helpers ------------------------------------------------------------------


def records_to_table(records: Sequence[PredictionRecord]) -> pa.Table:
    """Records as an Arrow table: base columns, then ``f_*`` and ``e_*`` columns."""
    import pyarrow as pa

    columns: dict[str, pa.Array] = {
        "request_id": pa.array([r.request_id for r in records], pa.string()),
        "model_name": pa.array([r.model_name for r in records], pa.string()),
        "model_version": pa.array([r.model_version for r in records], pa.int64()),
        "route": pa.array([r.route for r in records], pa.string()),
        "ts": pa.array([r.ts for r in records], pa.timestamp("us", tz="UTC")),
        "prediction": pa.array([r.prediction for r in records], pa.float64()),
        "latency_ms": pa.array([r.latency_ms for r in records], pa.float64()),
        "served": pa.array([r.served for r in records], pa.bool_()),
    }
    for prefix, attr in (("f_", "features"), ("e_", "entity")):
        dicts = [getattr(r, attr) for r in records]
        names: dict[str, None] = {}
        for d in dicts:
            names.update(dict.fromkeys(d))
        for name in names:
            columns[f"{prefix}{name}"] = _column([d.get(name) for d in dicts])
    return pa.table(columns)


def _column(values: list[Any]) -> pa.Array:
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep them as text
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _write_atomic(table: pa.Table, folder: Path) -> Path:
    import pyarrow.parquet as pq

    try:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, folder / name)
    except OSError as exc:
        raise StoreError(
            f"Cannot write to the prediction log folder {folder}: {exc}. "
            "Check that it is writable and the disk is not full."
        ) from exc
    return folder / name


def _check_folder(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise ConfigError(
            f"The prediction log path {root} is a file, not a folder. "
            "Point the log at a folder (it is created if missing)."
        )
    if root.is_dir() and not os.access(root, os.R_OK | os.X_OK):
        raise ConfigError(
            f"The prediction log folder {root} is not readable. "
            "Fix its permissions or use another folder."
        )


def _utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC, aware ones converted to it."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _empty_frame(with_labels: bool) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame({
        "request_id": pd.Series(dtype="string"),
        "model_name": pd.Series(dtype="string"),
        "model_version": pd.Series(dtype="int64"),
        "route": pd.Series(dtype="string"),
        "ts": pd.Series(dtype="datetime64[us, UTC]"),
        "prediction": pd.Series(dtype="float64"),
        "latency_ms": pd.Series(dtype="float64"),
        "served": pd.Series(dtype="bool"),
    })
    if with_labels:
        frame["label"] = pd.Series(dtype="float64")
        frame["labelled_at"] = pd.Series(dtype="datetime64[us, UTC]")
    return frame
