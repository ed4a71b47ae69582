"""Monitors of what was served: outlier rate and training-serving skew of logged requests.

- :func:`check_outliers` summarises the per-row ``outlier_score`` the server logs
  (``LoadedModel.outlier_scores``, see ``ctloop.models.outliers``): the share of
  served rows at or above the cutoff, which is about 1% on data like the
  training data, fires above ``max_rate``.
- :func:`check_serving_skew` checks the served features against the training
  schema (types, domains, ranges, missing values) as a pipeline checks a batch,
  reports the inputs the online store could not fill (the log's ``missing``),
  and, with a reference, their drift. Shadow and rejected requests never count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ctloop.core.jsontypes import JSONValue
from ctloop.data.schema import Schema
from ctloop.models.outliers import OUTLIER_SCORE_CUTOFF
from ctloop.monitoring.monitors import (
    DriftReference,
    MonitorResult,
    _window,
    load_reference,
    served_rows,
    serving_features,
    verdict,
)
from ctloop.requestlog.records import PredictionLog

if TYPE_CHECKING:
    from ctloop.data.skew import Anomaly

__all__ = ["check_outliers", "check_serving_skew", "missing_inputs"]


def check_outliers(
    log: PredictionLog,
    model_name: str,
    *,
    max_rate: float = 0.05,
    cutoff: float = OUTLIER_SCORE_CUTOFF,
    min_rows: int = 100,
    start: datetime | None = None,
    end: datetime | None = None,
) -> MonitorResult:
    """Is the share of served rows scoring ``>= cutoff`` above ``max_rate``?"""
    window = _window(start, end)
    frame = served_rows(log.read(model_name=model_name, start=start, end=end))
    scores = (
        pd.to_numeric(frame["outlier_score"], errors="coerce").dropna()
        if "outlier_score" in frame.columns
        else pd.Series(dtype=float)
    )
    result = partial(verdict, "outliers", model_name, window=window, n=len(scores),
                     threshold=max_rate)
    if len(scores) < min_rows:
        why = (
            "no outlier scores logged (the model has no detector)"
            if len(frame) >= min_rows
            else f"only {len(frame)} served rows"
        )
        return result("no_data", None, f"{why}; need {min_rows} scored rows")
    values = scores.to_numpy(dtype=np.float64)
    rate = float(np.mean(values >= cutoff))
    details: dict[str, JSONValue] = {
        "outlier_rate": rate,
        "cutoff": cutoff,
        "score_quantiles": {f"p{q}": float(np.quantile(values, q / 100)) for q in (50, 90, 99)},
    }
    return result("fired" if rate > max_rate else "ok", rate, details=details)


def missing_inputs(frame: pd.DataFrame) -> dict[str, int]:
    """How many served rows had each input unfilled by the online store (the log's ``missing``)."""
    if "missing" not in frame.columns:
        return {}
    counts: Counter[str] = Counter()
    for value in frame["missing"]:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        names = value.split(",") if isinstance(value, str) else list(value)
        counts.update(n.strip() for n in names if n and str(n).strip())
    return dict(counts.most_common())


def check_serving_skew(
    log: PredictionLog,
    model_name: str,
    schema: Schema,
    *,
    reference: DriftReference | None = None,
    columns: Iterable[str] | None = None,
    max_missing_share: float = 0.01,
    min_rows: int = 100,
    start: datetime | None = None,
    end: datetime | None = None,
) -> MonitorResult:
    """Do the served features fit the training schema, and did the store fill them?

    Fires on any error-level anomaly of the served features against ``schema``
    (the label and ids are not served and are not required here), or when an
    input came back null from the online store in more than ``max_missing_share``
    of served rows. Drift from ``reference`` is reported with the anomalies.
    """
    from ctloop.data.skew import validate_statistics
    from ctloop.data.stats import DatasetStatistics, compute_statistics

    window = _window(start, end)
    frame = served_rows(log.read(model_name=model_name, start=start, end=end))
    features = serving_features(frame)
    if columns is not None:
        features = features[[c for c in columns if c in features.columns]]
    result = partial(verdict, "skew", model_name, window=window, n=len(features),
                     threshold=0.0)
    if len(features) < min_rows:
        return result("no_data", None, f"only {len(features)} served rows, need {min_rows}")
    # Only model inputs are served: the schema's other columns (label, ids, ...) are not
    # expected here, but an input named in ``columns`` that was never logged is missing.
    wanted = list(columns) if columns is not None else list(features.columns)
    served_schema = _served_schema(schema, wanted)
    stats = compute_statistics(features, name=f"served by {model_name}")
    ref = None
    if reference is not None:
        loaded = load_reference(reference)
        ref = loaded if isinstance(loaded, DatasetStatistics) else compute_statistics(loaded)
    anomalies = validate_statistics(stats, served_schema, reference=ref)
    missing = missing_inputs(frame)
    unfilled = {k: v / len(frame) for k, v in missing.items()}
    too_many = {k: v for k, v in unfilled.items() if v > max_missing_share}
    details: dict[str, JSONValue] = {
        "anomalies": [a.one_line() for a in anomalies.anomalies],
        "errors": len(anomalies.errors),
        "missing_inputs": missing,
        "missing_share": unfilled,
    }
    if anomalies.drift is not None:
        details["drifted_features"] = [f.column for f in anomalies.drift.drifted]
        details["drift_share"] = anomalies.drift.share_drifted
    fired = bool(anomalies.errors) or bool(too_many)
    return result(
        "fired" if fired else "ok", float(len(anomalies.errors)),
        _skew_note(too_many, anomalies.errors), details
    )


def _served_schema(schema: Schema, wanted: list[str]) -> Schema:
    """The training schema's model inputs among ``wanted`` (label and ids are not served)."""
    return Schema(
        columns={
            n: c for n, c in schema.columns.items() if n in wanted and c.role not in ("label", "id")
        },
        severity=dict(schema.severity),
        drift_share=schema.drift_share,
    )


def _skew_note(too_many: dict[str, float], errors: list[Anomaly]) -> str:
    """What fired: the inputs the store left unfilled too often, the first schema errors."""
    notes = []
    if too_many:
        notes.append(
            "inputs unfilled by the online store: "
            + ", ".join(f"{k} ({v:.1%})" for k, v in too_many.items())
        )
    if errors:
        notes.append("; ".join(a.one_line() for a in errors[:5]))
    return " | ".join(notes)
