"""``POST /v1/models/{name}/feedback``: ground-truth labels into the prediction log.

Body: ``{"labels": [{"request_id": "...", "label": 1}, {"row_id": "...", "label": 0}]}``.
Each label names the answered row by the request id the service returned or
by the caller's own row id; ``PredictionLog.add_labels`` stores them. Every label must
fit the model the route serves (``ctloop.models.labels``: 0/1 for a binary model, one of
its classes, a finite number for a regression), and one id carries one label: a batch
with a label that does not fit, or with conflicting labels for one id, is refused with
422 and nothing of it is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ctloop.core.errors import ConfigError, UserInputError
from ctloop.core.lazy import lazy_module
from ctloop.models.labels import check_labels, resolve_duplicates
from ctloop.serving.body import loads, read_body
from ctloop.serving.errors import InvalidRequest
from ctloop.serving.openapi import FEEDBACK, body

if TYPE_CHECKING:
    import pandas as pd

    from ctloop.serving.dataplane import ServingState
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["add_routes", "labels_frame"]

_EXAMPLE = '{"labels": [{"request_id": "...", "label": 1}, {"row_id": "...", "label": 0}]}'


def labels_frame(payload: Any) -> pd.DataFrame:
    """The labels of a feedback body as a frame (``request_id``/``row_id``, ``label``)."""
    if not isinstance(payload, dict) or set(payload) != {"labels"}:
        raise InvalidRequest(f"The feedback body must be {_EXAMPLE}.")
    labels = payload["labels"]
    if not isinstance(labels, list) or not labels:
        raise InvalidRequest(f"'labels' must be a non-empty list, e.g. {_EXAMPLE}.")
    request_ids: list[str | None] = []
    row_ids: list[str | None] = []
    values: list[float | str] = []
    for i, item in enumerate(labels):
        rid, row, label = _one_label(i, item)
        request_ids.append(rid)
        row_ids.append(row)
        values.append(label)
    frame: dict[str, Any] = {}
    if any(r is not None for r in request_ids):
        frame["request_id"] = request_ids
    if any(r is not None for r in row_ids):
        frame["row_id"] = row_ids
    frame["label"] = values
    return pd.DataFrame(frame)


def _one_label(i: int, item: Any) -> tuple[str | None, str | None, float | str]:
    """Label ``i`` of the body: its request id or row id, and its value."""
    if not isinstance(item, dict) or not set(item) <= {"request_id", "row_id", "label"}:
        raise InvalidRequest(
            f"Label {i} must be an object with 'request_id' or 'row_id' and 'label'."
        )
    rid, row = item.get("request_id"), item.get("row_id")
    if (rid is None) == (row is None):
        raise InvalidRequest(f"Label {i} needs exactly one of 'request_id' or 'row_id'.")
    if not isinstance(rid if rid is not None else row, str):
        raise InvalidRequest(f"Label {i}: the id must be a string.")
    label = item.get("label")
    if isinstance(label, bool) or not isinstance(label, int | float | str):
        raise InvalidRequest(
            f"Label {i}: 'label' must be a number or a class name (0/1, a class, a value).")
    if isinstance(label, float) and (label != label or abs(label) == float("inf")):
        raise InvalidRequest(f"Label {i}: 'label' must be a finite number.")
    return rid, row, label if isinstance(label, str) else float(label)


def _ids(frame: pd.DataFrame) -> pd.Series:
    """The id each label names: its request id, else its row id."""
    ids = pd.Series([None] * len(frame), index=frame.index, dtype=object, name="id")
    for key in ("row_id", "request_id"):
        if key in frame.columns:
            ids = frame[key].where(frame[key].notna(), ids).rename(key)
    return ids


def add_routes(app: FastAPI, state: ServingState) -> None:
    from ctloop.serving.dataplane import json_response

    @app.post("/v1/models/{name}/feedback", openapi_extra=body(FEEDBACK),
              summary="Ground-truth labels for answered rows")
    async def feedback(name: str, request: Request) -> Response:
        raw = await read_body(request, state.config.max_body_bytes)
        frame = labels_frame(loads(raw, state.config.max_json_depth))
        deployment = state.deployment(name)  # 404 for a model not served here
        ids = _ids(frame)
        try:
            model = deployment.routes[0].model
            resolve_duplicates(frame.assign(id=ids), "id", "reject")
            check_labels(frame["label"], model.task, model.signature.classes, model=name,
                         ids=ids)
        except UserInputError as exc:
            raise InvalidRequest(str(exc)) from exc
        log = state.prediction_log
        if log is None:
            raise ConfigError(
                "This service keeps no prediction log, so it cannot store labels; start it "
                "with a prediction log (prediction_log in [ctloop.serving])."
            )
        try:
            stored = await run_in_threadpool(log.add_labels, frame)
        except UserInputError as exc:
            raise InvalidRequest(str(exc)) from exc
        return json_response({"model": name, "stored": stored})
