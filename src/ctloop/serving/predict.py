"""One prediction request: parse the body, route rows, fill features, score, log.

Everything here works on one DataFrame per request and per route; the only
per-row Python work (building ``PredictionRecord`` objects) happens later in
the request logger's thread.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ctloop.core.errors import UserInputError
from ctloop.serving.errors import InvalidRequest
from ctloop.serving.features import assemble, entity_keys
from ctloop.serving.loader import Deployment, Served
from ctloop.serving.requestlog import LogBatch

if TYPE_CHECKING:
    from ctloop.features import FeatureStore

__all__ = ["Request", "Scored", "parse_body", "score", "score_shadow"]

log = logging.getLogger("ctloop.serving")

_KEYS = {"rows", "columns", "request_ids", "now"}


@dataclass(frozen=True)
class Request:
    frame: pd.DataFrame
    request_ids: list[str]
    now: str | None = None


@dataclass(frozen=True)
class Scored:
    predictions: np.ndarray
    route_index: np.ndarray
    batches: list[LogBatch]

    def body(self, deployment: Deployment, request_ids: list[str]) -> dict[str, Any]:
        routes = np.array([s.route for s in deployment.routes], dtype=object)
        versions = np.array([s.version for s in deployment.routes])
        return {
            "model": deployment.name,
            "predictions": self.predictions.tolist(),
            "versions": versions[self.route_index].tolist(),
            "routes": routes[self.route_index].tolist(),
            "request_ids": request_ids,
        }


def parse_body(raw: bytes) -> Request:
    """The request body as one frame, with a request id per row."""
    try:
        body = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from None
    example = 'Send {"rows": [{"col": value, ...}, ...]} or {"columns": {"col": [values]}}.'
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object. {example}")
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        raise InvalidRequest(
            f"Unknown key(s) {unknown} in the request body; allowed: {sorted(_KEYS)}."
        )
    if ("rows" in body) == ("columns" in body):
        raise InvalidRequest(f"Give exactly one of 'rows' or 'columns'. {example}")
    if "rows" in body:
        rows = body["rows"]
        if not isinstance(rows, list) or not rows:
            raise InvalidRequest(f"'rows' must be a non-empty list of objects. {example}")
        if not all(isinstance(r, dict) for r in rows):
            raise InvalidRequest(f"Every item of 'rows' must be an object. {example}")
        frame = pd.DataFrame.from_records(rows)
    else:
        columns = body["columns"]
        if not isinstance(columns, dict) or not columns:
            raise InvalidRequest(f"'columns' must be a non-empty object of lists. {example}")
        if not all(isinstance(v, list) for v in columns.values()):
            raise InvalidRequest(f"Every value of 'columns' must be a list. {example}")
        lengths = {k: len(v) for k, v in columns.items()}
        if len(set(lengths.values())) != 1 or not next(iter(lengths.values())):
            raise InvalidRequest(
                f"The 'columns' lists must be non-empty and equally long; got lengths {lengths}."
            )
        frame = pd.DataFrame(columns)
    n = len(frame)
    ids = body.get("request_ids")
    if ids is None:
        prefix = uuid.uuid4().hex
        ids = [f"{prefix}-{i}" for i in range(n)]
    elif not isinstance(ids, list) or len(ids) != n:
        raise InvalidRequest(f"'request_ids' must be a list with one id per row ({n}).")
    else:
        ids = [str(i) for i in ids]
    now = body.get("now")
    if now is not None and not isinstance(now, str):
        raise InvalidRequest("'now' must be an ISO timestamp string, e.g. 2013-06-01T12:00:00.")
    return Request(frame, ids, now)


def _score_route(
    served: Served, frame: pd.DataFrame, store: FeatureStore | None, now: str | None
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Predictions, the model inputs and the entity keys for ``frame`` on one route."""
    columns = served.model.signature.columns
    full = assemble(frame, columns, served.feature_refs, store, now=now)
    try:
        predictions = served.model.predict(full, what="The request rows")
    except UserInputError as exc:
        raise InvalidRequest(str(exc)) from exc
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"The rows cannot be scored by {served.name}:{served.version}: {exc}"
        ) from exc
    keys = [k for k in entity_keys(store, served.feature_refs) if k in full.columns]
    return np.asarray(predictions, dtype=float), full[columns], full[keys]


def score(
    deployment: Deployment,
    request: Request,
    store: FeatureStore | None,
    *,
    started: float,
) -> Scored:
    """Route and score every row; the log batches are ready to queue."""
    frame, ids = request.frame, request.request_ids
    assigned = deployment.router.assign(frame, ids)
    predictions = np.empty(len(frame), dtype=float)
    parts = []
    for index, served in enumerate(deployment.routes):
        mask = assigned == index
        if not mask.any():
            continue
        whole = bool(mask.all())
        sub = frame if whole else frame[mask]
        preds, inputs, entity = _score_route(served, sub, store, request.now)
        predictions[mask] = preds
        parts.append((served, mask, whole, preds, inputs, entity))
    latency_ms = (time.perf_counter() - started) * 1000
    ts = logical_time(request.now)
    ids_array = None
    batches = []
    for served, mask, whole, preds, inputs, entity in parts:
        if whole:
            route_ids = ids
        else:
            ids_array = np.asarray(ids, dtype=object) if ids_array is None else ids_array
            route_ids = ids_array[mask].tolist()
        batches.append(
            LogBatch(
                served.name,
                served.version,
                served.route,
                ts,
                route_ids,
                preds,
                inputs,
                entity,
                latency_ms,
            )
        )
    return Scored(predictions, assigned, batches)


def logical_time(now: str | None) -> datetime:
    """When the predictions count as made: the request's ``now`` (a replay, a backfill), else now.

    Monitors window the log by this time, so replayed traffic lands in the
    period it replays, not in the hour it was sent.
    """
    if now is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(now)
    except ValueError:
        raise InvalidRequest(
            f"'now' must be an ISO timestamp, e.g. 2013-06-01T12:00:00. Got {now!r}."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def score_shadow(shadow: Served, request: Request, store: FeatureStore | None) -> LogBatch | None:
    """The shadow's predictions for every row, as a log batch (never returned to a client)."""
    started = time.perf_counter()
    try:
        preds, inputs, entity = _score_route(shadow, request.frame, store, request.now)
    except Exception as exc:  # the shadow must never affect the served answer
        log.warning("shadow %s:%s failed: %s", shadow.name, shadow.version, exc)
        return None
    latency_ms = (time.perf_counter() - started) * 1000
    return LogBatch(
        shadow.name,
        shadow.version,
        "shadow",
        logical_time(request.now),
        request.request_ids,
        preds,
        inputs,
        entity,
        latency_ms,
        served=False,
    )
