"""Log batches: a frame-shaped way to hand rows to the request log (batch scoring, tests).

A :class:`LogBatch` holds one request's or one scored chunk's rows as frames;
``records()`` turns it into :class:`PredictionRecord` values and
:func:`as_entry` into the writer's :class:`Entry` (arrays), so every row the
log takes goes through the one table builder of :mod:`ctloop.requestlog.entries`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from ctloop.requestlog.entries import Entry, SchemaBook, build_tables
from ctloop.requestlog.records import PredictionRecord

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["LogBatch", "as_entry", "batch_table", "batches_table", "rejected_batch"]


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


def as_entry(batch: LogBatch) -> Entry:
    """The batch as the writer's arrays (its outlier scores kept when it has them)."""
    return Entry(
        model_name=batch.model_name, model_version=batch.model_version, route=batch.route,
        protocol=batch.protocol, ts=batch.ts, latency_ms=batch.latency_ms,
        request_ids=list(batch.request_ids), scores=np.asarray(batch.predictions),
        inputs={str(c): batch.features[c].to_numpy() for c in batch.features.columns},
        entity={str(c): batch.entity[c].to_numpy() for c in batch.entity.columns},
        row_ids=batch.row_ids, decisions=batch.decisions, served=batch.served,
        status=batch.status, error=batch.error, missing=batch.missing,
        outlier_scores=batch.outlier_scores,
    )


def batch_table(batch: LogBatch) -> pa.Table:
    """One request's rows as an Arrow table."""
    return batches_table([batch])


def batches_table(batches: Sequence[LogBatch]) -> pa.Table:
    """Many batches' rows as one Arrow table (columns of every batch, nulls elsewhere)."""
    from ctloop.requestlog.tables import concat_tables

    built = build_tables([as_entry(b) for b in batches], SchemaBook())
    if built.quarantined:
        entry, reason = built.quarantined[0]
        raise ValueError(f"rows of {entry.model_name} cannot be logged: {reason}")
    return concat_tables(built.tables)
