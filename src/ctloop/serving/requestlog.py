"""The request log: every answered row becomes a ``PredictionRecord``, off the request path.

Handlers hand a whole request (frames and arrays, no per-row work) to a queue;
a daemon thread turns it into records and appends them to the prediction log,
flushing when the queue has been idle for ``flush_interval`` seconds and on
``close()``, so nothing answered is lost on a clean shutdown.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from ctloop.monitoring.base import PredictionLog, PredictionRecord

__all__ = ["LogBatch", "RequestLogger", "rejected_batch"]

log = logging.getLogger("ctloop.serving")


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
    return plain.to_dict("records")


_STOP = object()


class RequestLogger:
    """A queue in front of a ``PredictionLog``, drained by one background thread."""

    def __init__(self, target: PredictionLog, *, flush_interval: float = 2.0) -> None:
        self.target = target
        self.flush_interval = flush_interval
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=10_000)
        self._thread = threading.Thread(target=self._run, name="ctloop-request-log", daemon=True)
        self._thread.start()

    def submit(self, batches: list[LogBatch]) -> None:
        """Queue batches without blocking; counts (and logs) what a full queue drops."""
        for batch in batches:
            try:
                self._queue.put_nowait(batch)
            except queue.Full:
                self.dropped += len(batch.request_ids)
                log.warning("request log queue full: dropped %d rows", len(batch.request_ids))

    def _run(self) -> None:
        dirty = False
        last_flush = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self.flush_interval if dirty else None)
            except queue.Empty:
                item = None
            try:
                if item is _STOP:
                    self._flush()
                    return
                if isinstance(item, LogBatch):
                    records = item.records()
                    self.target.append(records)
                    self.written += len(records)
                    dirty = True
                if (
                    dirty
                    and (item is None or time.monotonic() - last_flush > self.flush_interval)
                    and self._queue.empty()
                ):
                    self._flush()
                    dirty, last_flush = False, time.monotonic()
            except Exception:  # the log must never take the server down
                log.exception("writing the request log failed")
            finally:
                if item is not None:
                    self._queue.task_done()

    def _flush(self) -> None:
        self.target.flush()

    def flush(self) -> None:
        """Wait until everything queued so far is appended, then flush the log."""
        self._queue.join()
        self._flush()

    def close(self) -> None:
        """Write what is queued, flush and close the log."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
        try:
            self.target.close()
        except Exception:
            log.exception("closing the request log failed")
