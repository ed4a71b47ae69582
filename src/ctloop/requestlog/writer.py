"""The request log: every request, answered, rejected or failed, off the request path.

``submit`` only appends the request's batches (frames and arrays, no per-row
work) to an in-memory queue. A writer thread wakes at least every
``interval`` (25 ms), turns everything queued into one Arrow table and spools
it to the prediction log's local write-ahead file, which survives the process
being killed. So an acknowledged answer is durable within ``interval`` plus
one spool write (documented as 100 ms) and visible to monitors once the log
publishes it (``publish_interval``, 0.5 s by default).

Nothing is dropped: when the queue holds ``max_pending_rows`` rows (the
writer cannot keep up or its disk fails), ``submit`` waits for room up to
``max_wait`` seconds and then raises ``StoreError``, so the request is
answered 503 and never acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from ctloop.core.errors import StoreError
from ctloop.core.secrets import mask_secrets
from ctloop.requestlog.records import PredictionLog, PredictionRecord

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["LogBatch", "LogUnavailable", "RequestLogger", "batch_table", "batches_table",
           "rejected_batch"]

log = logging.getLogger("ctloop.serving")


class LogUnavailable(StoreError):
    """The request log cannot take the request's rows now: answered 503, never acknowledged."""

    headline = "request log unavailable"


@dataclass(frozen=True)
class LogBatch:
    """The rows one route answered in one request."""

    model_name: str
    model_version: int
    route: str
    ts: datetime
    request_ids: list[str]
    predictions: np.ndarray
    features: pd.DataFrame  # model inputs as served, one row per prediction
    entity: pd.DataFrame  # join keys
    latency_ms: float
    served: bool = True
    status: int = 200
    error: str = ""
    protocol: str = "v1"
    row_ids: list[str | None] | None = None  # the caller's row ids, one per prediction
    decisions: np.ndarray | None = None  # classes at the model's decision threshold
    outlier_scores: np.ndarray | None = None
    missing: tuple[str, ...] = ()  # inputs the online store could not fill

    def records(self) -> list[PredictionRecord]:
        n = len(self.request_ids)
        features = _plain_records(self.features) if len(self.features.columns) else [{}] * n
        entity = _plain_records(self.entity) if len(self.entity.columns) else [{}] * n
        row_ids = self.row_ids if self.row_ids is not None else [None] * n
        decisions = self.decisions.tolist() if self.decisions is not None else [None] * n
        outliers = (
            self.outlier_scores.tolist() if self.outlier_scores is not None else [None] * n
        )
        return [
            PredictionRecord(
                request_id=rid,
                model_name=self.model_name,
                model_version=self.model_version,
                route=self.route,
                ts=self.ts,
                prediction=float(p),
                features=f,
                entity=e,
                latency_ms=self.latency_ms,
                served=self.served,
                status=self.status,
                error=self.error,
                protocol=self.protocol,
                row_id=row_id,
                decision=None if d is None else int(d),
                outlier_score=None if o is None else float(o),
                missing=self.missing,
            )
            for rid, p, f, e, row_id, d, o in zip(
                self.request_ids, self.predictions.tolist(), features, entity, row_ids,
                decisions, outliers, strict=True,
            )
        ]


def rejected_batch(
    *,
    request_id: str,
    model_name: str,
    route: str,
    protocol: str,
    status: int,
    error: str,
    latency_ms: float,
    ts: datetime,
    model_version: int = 0,
) -> LogBatch:
    """The log entry of a request answered 4xx or 5xx: one record, no prediction (NaN)."""
    empty = pd.DataFrame(index=range(1))
    return LogBatch(
        model_name=model_name, model_version=model_version, route=route, ts=ts,
        request_ids=[request_id], predictions=np.array([np.nan]), features=empty[[]],
        entity=empty[[]], latency_ms=latency_ms, served=False, status=status, error=error,
        protocol=protocol,
    )


def _plain_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    plain = frame.astype(object).where(frame.notna(), None)
    # Column labels are strings here (model inputs and entity keys).
    return cast("list[dict[str, object]]", plain.to_dict("records"))


def batch_table(batch: LogBatch) -> pa.Table:
    """One request's rows as an Arrow table."""
    return batches_table([batch])


def batches_table(batches: Sequence[LogBatch]) -> pa.Table:
    """Many requests' rows as one Arrow table, built column by column.

    The writer thread calls this on everything queued since its last write;
    one ``values.tolist()`` per request frame is the only per-request work, so
    a burst of single-row requests costs microseconds each, not a DataFrame each.
    """
    import pyarrow as pa

    from ctloop.requestlog.tables import any_column, base_types

    types = base_types()
    scalars: dict[str, list[object]] = {k: [] for k in (
        "model_name", "model_version", "route", "ts", "latency_ms", "served", "status",
        "error", "protocol", "missing")}
    request_ids: list[str] = []
    row_ids: list[str | None] = []
    decisions: list[object] = []
    outliers: list[object] = []
    predictions = []
    extra: dict[str, list[object]] = {}
    offset = 0
    for b in batches:
        n = len(b.request_ids)
        request_ids.extend(b.request_ids)
        predictions.append(np.asarray(b.predictions, dtype="float64").reshape(-1))
        for key, value in (("model_name", b.model_name), ("model_version", b.model_version),
                           ("route", b.route), ("ts", b.ts), ("latency_ms", float(b.latency_ms)),
                           ("served", bool(b.served)), ("status", int(b.status)),
                           ("error", mask_secrets(b.error) if b.error else ""),
                           ("protocol", b.protocol),
                           ("missing", list(b.missing))):
            scalars[key].extend([value] * n)
        per_row = getattr(b, "per_row", None)  # a batch of several requests (serving.logspool)
        if per_row is not None:
            stamps, latencies = per_row()
            scalars["ts"][-n:] = stamps
            scalars["latency_ms"][-n:] = latencies
        row_ids.extend([None if r is None else str(r) for r in b.row_ids]
                       if b.row_ids is not None else [None] * n)
        decisions.extend(b.decisions.tolist() if b.decisions is not None else [None] * n)
        outliers.extend(b.outlier_scores.tolist() if b.outlier_scores is not None
                        else [None] * n)
        for prefix, frame in (("f_", b.features), ("e_", b.entity)):
            if not len(frame.columns):
                continue
            rows = frame.to_numpy(dtype=object).tolist()
            for j, name in enumerate(frame.columns):
                column = extra.get(prefix + str(name))
                if column is None:
                    column = extra[prefix + str(name)] = [None] * offset
                column.extend(r[j] for r in rows)
        offset += n
        for column in extra.values():
            if len(column) < offset:
                column.extend([None] * (offset - len(column)))
    columns: dict[str, pa.Array] = {"request_id": pa.array(request_ids, pa.string())}
    for key in ("model_name", "model_version", "route", "ts"):
        columns[key] = pa.array(scalars[key], types[key])
    columns["prediction"] = pa.array(np.concatenate(predictions) if predictions else [],
                                     pa.float64())
    for key in ("latency_ms", "served", "status", "error", "protocol"):
        columns[key] = pa.array(scalars[key], types[key])
    columns["row_id"] = pa.array(row_ids, pa.string())
    columns["decision"] = pa.array(decisions, types["decision"], from_pandas=True)
    columns["outlier_score"] = pa.array(outliers, pa.float64(), from_pandas=True)
    columns["missing"] = pa.array(scalars["missing"], types["missing"])
    for name, values in extra.items():
        columns[name] = any_column(values)
    return pa.table(columns)


class RequestLogger:
    """A bounded queue in front of a ``PredictionLog``, drained by one writer thread."""

    def __init__(
        self,
        target: PredictionLog,
        *,
        interval: float = 0.025,
        max_pending_rows: int = 200_000,
        max_wait: float = 10.0,
    ) -> None:
        self.target = target
        self.interval = interval
        self.max_pending_rows = max_pending_rows
        self.max_wait = max_wait
        self.written = 0
        self.failures = 0
        self.waited = 0  # submits that had to wait for room (backpressure)
        self._pending: list[LogBatch] = []
        self._pending_rows = 0
        self._in_flight = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="ctloop-request-log", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Always 0: a full queue makes callers wait (then fail), it never drops rows."""
        return 0

    def submit(self, batches: list[LogBatch]) -> None:
        """Queue batches; waits when the queue is full, raises ``StoreError`` after ``max_wait``."""
        rows = sum(len(b.request_ids) for b in batches)
        if not rows:
            return
        with self._cond:
            if self._pending_rows + rows > self.max_pending_rows and self._pending_rows:
                self.waited += 1
                deadline = time.monotonic() + self.max_wait
                while self._pending_rows + rows > self.max_pending_rows and self._pending_rows:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._stop:
                        raise StoreError(
                            f"The request log is {self._pending_rows} rows behind and could not "
                            f"catch up within {self.max_wait:g} s (is its disk full or slow?); "
                            "the request was not answered so nothing unlogged is acknowledged."
                        )
                    self._cond.wait(left)
            if self._stop:
                raise StoreError("The request log is closed; the server is shutting down.")
            self._pending.extend(batches)
            self._pending_rows += rows
            if self._pending_rows >= 4096:
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._stop:
                    self._cond.wait(self.interval)
                if not self._pending:
                    if self._stop:
                        return
                    continue
                batches, self._pending = self._pending, []
                self._in_flight = sum(len(b.request_ids) for b in batches)
            started = time.monotonic()
            try:
                self._write(batches)
                self.written += self._in_flight
                ok = True
            except Exception:  # keep the rows: put them back in front and retry
                self.failures += 1
                log.exception("writing the request log failed; retrying")
                ok = False
            with self._cond:
                if ok:
                    self._pending_rows -= self._in_flight
                else:
                    self._pending[:0] = batches
                self._in_flight = 0
                self._cond.notify_all()
            if not ok:
                time.sleep(min(1.0, 10 * self.interval))
            else:
                spare = self.interval - (time.monotonic() - started)
                if spare > 0 and not self._stop:
                    with self._cond:  # gather a group for the next write, woken by a burst
                        if self._pending_rows < 4096:
                            self._cond.wait(spare)

    def _write(self, batches: list[LogBatch]) -> None:
        append_table = getattr(self.target, "append_table", None)
        if append_table is None:
            self.target.append([r for b in batches for r in b.records()])
            return
        append_table(batches_table(batches))

    def pending(self) -> int:
        """Rows queued (or being written) but not yet in the write-ahead spool."""
        with self._cond:
            return self._pending_rows

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far is in the write-ahead spool."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending_rows and time.monotonic() < deadline:
                self._cond.wait(0.05)

    def flush(self) -> None:
        """Spool everything queued so far, then make it visible (publish)."""
        self.drain()
        self.target.flush()

    def close(self) -> None:
        """Spool what is queued, stop the writer, then flush and close the log."""
        self.drain()
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=30)
        try:
            self.target.close()
        except Exception:
            log.exception("closing the request log failed")
