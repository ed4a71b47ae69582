"""Log entries built off the request path, coalesced, handed to the request log in order.

A handler hands over an :class:`Entry` (arrays it already has, no per-row
work). One thread drains the spool, groups the entries of one model version,
route, protocol and status, builds one frame per group (and its outlier
scores) and passes the batches to ``RequestLogger.submit``: the per-batch
cost of frames is paid once per drain, not once per request. Each row keeps
its own request's latency and time (:class:`RowwiseBatch`).

Nothing is dropped: the spool is unbounded and drains in milliseconds; the
request log's own durability window applies from the moment it receives a
batch (the spool lingers ``linger`` seconds, 10 ms by default, before each
drain so that a drain takes many requests at once). ``flush()`` returns
once everything submitted so far reached the log and the log flushed;
``close()`` drains, then closes the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ctloop.core.errors import StoreError
from ctloop.models.flavors import LoadedModel
from ctloop.requestlog.records import PredictionRecord
from ctloop.requestlog.writer import LogBatch, LogUnavailable, RequestLogger

__all__ = ["Entry", "LogSpool", "RowwiseBatch", "coalesce"]

log = logging.getLogger("ctloop.serving")


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
    scores: np.ndarray
    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    entity: Mapping[str, Sequence[Any] | np.ndarray] = field(default_factory=dict)
    row_ids: list[str | None] | None = None
    decisions: np.ndarray | None = None
    served: bool = True
    status: int = 200
    error: str = ""
    missing: tuple[str, ...] = ()
    model: LoadedModel | None = None  # scores outliers, once per coalesced group

    def key(self) -> tuple[Any, ...]:
        return (self.model_name, self.model_version, self.route, self.protocol, self.served,
                self.status, self.error, self.missing, tuple(self.inputs), tuple(self.entity),
                self.decisions is None, id(self.model))


@dataclass(frozen=True)
class RowwiseBatch(LogBatch):
    """A ``LogBatch`` of several requests: per-row latency and time, records built fast."""

    latencies: np.ndarray | None = None
    stamps: list[datetime] | None = None

    def per_row(self) -> tuple[list[datetime], list[float]]:
        """Each row's own request time and latency (read by the request log's table writer)."""
        n = len(self.request_ids)
        stamps = self.stamps if self.stamps is not None else [self.ts] * n
        latencies = (self.latencies.tolist() if self.latencies is not None
                     else [self.latency_ms] * n)
        return stamps, latencies

    def records(self) -> list[PredictionRecord]:
        n = len(self.request_ids)
        features = _rows(self.features, n)
        entity = _rows(self.entity, n)
        row_ids = self.row_ids if self.row_ids is not None else [None] * n
        decisions = self.decisions.tolist() if self.decisions is not None else [None] * n
        outliers = (
            self.outlier_scores.tolist() if self.outlier_scores is not None else [None] * n
        )
        latencies = self.latencies.tolist() if self.latencies is not None else [self.latency_ms] * n
        stamps = self.stamps if self.stamps is not None else [self.ts] * n
        predictions = self.predictions.tolist()
        return [
            PredictionRecord(
                request_id=rid, model_name=self.model_name, model_version=self.model_version,
                route=self.route, ts=ts, prediction=p, features=f, entity=e, latency_ms=lat,
                served=self.served, status=self.status, error=self.error,
                protocol=self.protocol, row_id=row_id,
                decision=None if d is None else int(d),
                outlier_score=None if o is None else float(o), missing=self.missing,
            )
            for rid, p, f, e, row_id, d, o, lat, ts in zip(
                self.request_ids, predictions, features, entity, row_ids, decisions, outliers,
                latencies, stamps, strict=True,
            )
        ]


def _rows(frame: pd.DataFrame, n: int) -> list[dict[str, Any]]:
    """Plain per-row dicts (NaN and NaT as None) from a frame, column by column."""
    if not len(frame.columns):
        return [{} for _ in range(n)]
    names = list(frame.columns)
    columns = []
    for name in names:
        values = frame[name].to_numpy()
        if values.dtype.kind in "fcmM":
            mask = pd.isna(values)
            if mask.any():
                values = values.astype(object)
                values[mask] = None
        elif values.dtype == object:
            mask = pd.isna(values)
            if mask.any():
                values = values.copy()
                values[mask] = None
        if values.dtype.kind == "M":
            values = np.asarray(pd.Series(values).dt.to_pydatetime(), dtype=object)
        columns.append(values.tolist())
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def coalesce(entries: Sequence[Entry]) -> list[LogBatch]:
    """One batch per group of entries that share model version, route, protocol and status."""
    groups: dict[tuple[Any, ...], list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.key(), []).append(entry)
    return [_batch(group) for group in groups.values()]


def _batch(group: list[Entry]) -> LogBatch:
    first = group[0]
    sizes = [len(e.request_ids) for e in group]
    frame = pd.DataFrame(
        {name: np.concatenate([e.inputs[name] for e in group]) for name in first.inputs}
    )
    entity = pd.DataFrame(
        {name: [v for e in group for v in e.entity[name]] for name in first.entity},
        index=frame.index if len(first.inputs) else None,
    )
    if not len(first.inputs):
        frame = pd.DataFrame(index=range(sum(sizes)))
        entity = entity if len(first.entity) else frame[[]]
    outliers = None
    if first.model is not None and len(frame.columns):
        outliers = first.model.outlier_scores(frame)
    row_ids = None
    if any(e.row_ids is not None for e in group):
        row_ids = [r for e, n in zip(group, sizes, strict=True)
                   for r in (e.row_ids if e.row_ids is not None else [None] * n)]
    return RowwiseBatch(
        model_name=first.model_name, model_version=first.model_version, route=first.route,
        ts=first.ts, request_ids=[r for e in group for r in e.request_ids],
        predictions=np.concatenate([e.scores for e in group]), features=frame, entity=entity,
        latency_ms=max(e.latency_ms for e in group), served=first.served, status=first.status,
        error=first.error, protocol=first.protocol, row_ids=row_ids,
        decisions=None if first.decisions is None else np.concatenate(
            [e.decisions for e in group if e.decisions is not None]),
        outlier_scores=outliers, missing=first.missing,
        latencies=np.repeat([e.latency_ms for e in group], sizes),
        stamps=[e.ts for e, n in zip(group, sizes, strict=True) for _ in range(n)],
    )


class LogSpool:
    """An unbounded FIFO of log entries in front of a ``RequestLogger``."""

    def __init__(self, target: RequestLogger, *, linger: float = 0.01,
                 max_backlog: int = 50_000) -> None:
        self.target = target
        self.linger = linger
        self.max_backlog = max_backlog
        self.entries = 0
        self.failed = 0
        self.waits = 0
        self._queue: deque[Entry] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="ctloop-log-spool", daemon=True)
        self._thread.start()

    @property
    def written(self) -> int:
        return int(getattr(self.target, "written", 0))

    @property
    def dropped(self) -> int:
        return int(getattr(self.target, "dropped", 0))

    def submit(self, entries: Sequence[Entry]) -> None:
        """Queue one request's log entries; ``LogUnavailable`` (503) when far behind, never drops.

        Refusing here, before the answer is sent, means nothing unlogged is acknowledged.
        """
        if len(self._queue) > self.max_backlog:
            raise LogUnavailable(
                f"The request log is {len(self._queue)} requests behind; retry shortly."
            )
        with self._cond:
            was_empty = not self._queue
            self._queue.extend(entries)
            if was_empty:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue and self._closing:
                    return
                self._busy = True
            if self.linger and not self._closing:
                time.sleep(self.linger)  # let a few more requests join this drain
            with self._cond:
                entries = list(self._queue)
                self._queue.clear()
                self._busy = True
            try:
                self._hand_over(coalesce(entries))
                self.entries += len(entries)
            except Exception:  # the log must never take the server down
                self.failed += len(entries)
                log.exception("handing %d entries to the request log failed", len(entries))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _hand_over(self, batches: list[LogBatch]) -> None:
        """Submit, waiting out a request log that is behind (it raises after its max wait)."""
        while True:
            try:
                self.target.submit(batches)
                return
            except StoreError:
                if self._closing and not self._thread.is_alive():
                    raise
                self.waits += 1
                time.sleep(0.05)

    def backlog(self) -> int:
        """Entries not yet handed to the request log."""
        return len(self._queue)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every entry submitted so far reached the request log."""
        with self._cond:
            self._cond.wait_for(lambda: not self._queue and not self._busy, timeout=timeout)

    def flush(self) -> None:
        """Everything submitted so far is in the log and flushed."""
        self.drain()
        self.target.flush()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=30)
        self.target.close()
