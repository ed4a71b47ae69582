"""Explanation routes: per-feature contributions over HTTP, KServe v1 and OIP v2 style.

    POST /v1/models/{name}:explain        {"instances": [...]} | {"rows": [...]} |
                                          {"columns": {...}}; optional "top", "now"
    POST /v2/models/{name}/explain        an Open Inference Protocol inference request
    POST /v2/models/{name}/versions/{v}/explain

Rows get the same treatment as predictions: missing model inputs are filled
from the online feature store, then checked against the model's signature.
The version answering on the primary route is explained (v2 can name a
loaded version). The contributions of each row plus its base value add up to
its raw score (log-odds for a classifier); see ``ctloop.models.explain``.

Every explain request is written to the request log like a prediction, with
protocol ``v1-explain`` or ``v2-explain`` and ``served`` false: there is a
record of who looked at what, and the monitors (which read served rows) do
not count explanations as traffic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ctloop.core.errors import NotFound
from ctloop.models.explain import Explanation, explain
from ctloop.serving.errors import InvalidRequest
from ctloop.serving.inputs import new_request_id
from ctloop.serving.logspool import Entry, LogSpool
from ctloop.serving.pool import Deployment, Served
from ctloop.serving.scoring.features import assemble
from ctloop.serving.scoring.predict import logical_time

if TYPE_CHECKING:
    from ctloop.features import FeatureStore

__all__ = ["add_explain_routes", "explain_rows", "frame_from_v1", "frame_from_v2"]

_V1_KEYS = {"instances", "rows", "columns", "top", "now"}
_V1_EXAMPLE = (
    'Send {"instances": [{"col": value, ...}, ...]}, {"rows": [...]} or '
    '{"columns": {"col": [values]}}.'
)
_ROWS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {"oneOf": [{"type": "object"}, {"type": "array"}]},
}
_V1_BODY = {
    "type": "object",
    "properties": {
        "instances": _ROWS_SCHEMA,
        "rows": {"type": "array", "minItems": 1, "items": {"type": "object"}},
        "columns": {"type": "object", "additionalProperties": {"type": "array"}},
        "top": {"type": "integer", "minimum": 1},
        "now": {"type": "string", "format": "date-time"},
    },
}
_V2_BODY = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object", "properties": {"top": {"type": "integer"}}},
        "inputs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype", "data"],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "datatype": {"type": "string"},
                    "data": {"type": "array"},
                },
            },
        },
    },
}


class ServingStateLike(Protocol):
    """What the routes need from the app's state (``ctloop.serving.app.ServingState``)."""

    feature_store: FeatureStore | None
    logger: LogSpool | None

    def deployment(self, name: str) -> Deployment: ...

    def log_failure(self, name: str, protocol: str, exc: Exception, started: float,
                    request_id: str) -> int: ...


@dataclass(frozen=True)
class Explained:
    """An explain route's answer, and what the request log keeps of it."""

    answer: dict[str, Any]
    served: Served
    inputs: pd.DataFrame  # the model inputs as explained (online features filled in)
    predictions: np.ndarray
    now: str | None = None

    def log_entry(self, protocol: str, latency_ms: float) -> Entry:
        return Entry(
            self.served.name, self.served.version, self.served.route, protocol,
            logical_time(self.now), latency_ms, [new_request_id() for _ in self.predictions],
            self.predictions, {c: self.inputs[c].to_numpy() for c in self.inputs.columns},
            served=False,
        )


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from None


def _top(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{where} must be a positive integer (how many features per row).")
    return value


def _rows_frame(rows: list[Any], columns: list[str], key: str) -> pd.DataFrame:
    if all(isinstance(r, dict) for r in rows):
        if not all(rows):
            raise InvalidRequest(f"Every item of '{key}' must name at least one input.")
        return pd.DataFrame.from_records(rows)
    if all(isinstance(r, list) for r in rows):
        bad = sorted({len(r) for r in rows if len(r) != len(columns)})
        if bad:
            raise InvalidRequest(
                f"Every list in '{key}' must hold the model's {len(columns)} inputs in order "
                f"{columns}; got lists of length {bad}."
            )
        return pd.DataFrame(rows, columns=columns)
    raise InvalidRequest(f"The items of '{key}' must be all objects or all lists. {_V1_EXAMPLE}")


def frame_from_v1(body: Any, columns: list[str]) -> tuple[pd.DataFrame, int | None, str | None]:
    """(rows, top, now) of a v1 explain body; ``columns`` orders list-form instances."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object. {_V1_EXAMPLE}")
    unknown = sorted(set(body) - _V1_KEYS)
    if unknown:
        raise InvalidRequest(f"Unknown key(s) {unknown}; allowed: {sorted(_V1_KEYS)}.")
    given = [k for k in ("instances", "rows", "columns") if k in body]
    if len(given) != 1:
        raise InvalidRequest(f"Give exactly one of 'instances', 'rows' or 'columns'. {_V1_EXAMPLE}")
    key = given[0]
    value = body[key]
    if key == "columns":
        if not isinstance(value, dict) or not value:
            raise InvalidRequest(f"'columns' must be a non-empty object of lists. {_V1_EXAMPLE}")
        lengths = {k: len(v) if isinstance(v, list) else -1 for k, v in value.items()}
        if len(set(lengths.values())) != 1 or next(iter(lengths.values())) < 1:
            raise InvalidRequest(
                f"The 'columns' values must be non-empty lists of one length; got {lengths}."
            )
        frame = pd.DataFrame(value)
    else:
        if not isinstance(value, list) or not value:
            raise InvalidRequest(f"'{key}' must be a non-empty list. {_V1_EXAMPLE}")
        frame = _rows_frame(value, columns, key)
    now = body.get("now")
    if now is not None and not isinstance(now, str):
        raise InvalidRequest("'now' must be an ISO timestamp string, e.g. 2013-06-01T12:00:00.")
    return frame, _top(body.get("top"), "'top'"), now


def frame_from_v2(body: Any, columns: list[str]) -> tuple[pd.DataFrame, int | None]:
    """(rows, top) of an OIP v2 request: one tensor per input column, or one 2-D tensor."""
    example = (
        'Send {"inputs": [{"name": "hour", "shape": [2], "datatype": "INT64", '
        '"data": [7, 18]}, ...]}: one tensor per input, or one [rows, inputs] tensor.'
    )
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise InvalidRequest(f"The request body needs a non-empty 'inputs' list. {example}")
    tensors: list[tuple[str, np.ndarray[Any, Any]]] = []
    for item in body["inputs"]:
        if not isinstance(item, dict) or not {"name", "shape", "data"} <= set(item):
            raise InvalidRequest(f"Every input needs 'name', 'shape' and 'data'. {example}")
        shape = item["shape"]
        if not (
            isinstance(shape, list)
            and shape
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise InvalidRequest(f"Input {item['name']!r} has an invalid shape {shape!r}.")
        try:
            data: np.ndarray[Any, Any] = np.asarray(item["data"], dtype=object).reshape(shape)
        except ValueError:
            raise InvalidRequest(
                f"Input {item['name']!r}: its data does not fill the shape {shape}."
            ) from None
        tensors.append((str(item["name"]), data))
    if len(tensors) == 1 and tensors[0][1].ndim == 2 and tensors[0][0] not in columns:
        name, data = tensors[0]
        if data.shape[1] != len(columns):
            raise InvalidRequest(
                f"The 2-D input {name!r} has {data.shape[1]} columns; the model reads "
                f"{len(columns)}: {columns}."
            )
        frame = pd.DataFrame(data, columns=columns).infer_objects()
    else:
        lengths = {name: data.shape[0] for name, data in tensors}
        if len(set(lengths.values())) != 1:
            raise InvalidRequest(f"The inputs must have one row count; got {lengths}.")
        for name, data in tensors:
            if data.ndim != 1 and not (data.ndim == 2 and data.shape[1] == 1):
                raise InvalidRequest(
                    f"Input {name!r} has shape {list(data.shape)}; send [rows] or [rows, 1] "
                    "per column, or one [rows, inputs] tensor."
                )
        frame = pd.DataFrame({name: data.reshape(-1) for name, data in tensors}).infer_objects()
    if frame.empty:
        raise InvalidRequest("The request holds no rows.")
    parameters = body.get("parameters") or {}
    top = parameters.get("top") if isinstance(parameters, dict) else None
    return frame, _top(top, "'parameters.top'")


def explain_rows(
    served: Served, frame: pd.DataFrame, store: FeatureStore | None, now: str | None = None
) -> Explanation:
    """Fill the rows' missing inputs from the online store and explain them."""
    return _explain_rows(served, frame, store, now)[0]


def _explain_rows(
    served: Served, frame: pd.DataFrame, store: FeatureStore | None, now: str | None
) -> tuple[Explanation, pd.DataFrame]:
    full = assemble(frame, served.model.signature.columns, served.feature_refs, store, now=now)
    try:
        return explain(served.model, full, what="The request rows"), full[
            list(served.model.signature.columns)]
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"The rows cannot be explained by {served.name}:{served.version}: {exc}"
        ) from exc


def _served(deployment: Deployment, version: int | None) -> Served:
    if version is None:
        return deployment.routes[0]
    for served in deployment.routes:
        if served.version == version:
            return served
    loaded = sorted({s.version for s in deployment.routes})
    raise NotFound(
        f"Version {version} of {deployment.name!r} is not loaded here; loaded: {loaded}."
    )


def _v1(state: ServingStateLike, name: str, raw: bytes) -> Explained:
    served = _served(state.deployment(name), None)
    frame, top, now = frame_from_v1(_json_body(raw), list(served.model.signature.columns))
    result, inputs = _explain_rows(served, frame, state.feature_store, now)
    return Explained({
        "model": name,
        "version": served.version,
        "route": served.route,
        "space": result.space,
        "method": result.method,
        "features": list(result.features),
        "explanations": result.to_rows(top),
    }, served, inputs, result.predictions(), now)


def _v2(state: ServingStateLike, name: str, version: str | None, raw: bytes) -> Explained:
    if version is not None and not version.isdigit():
        raise NotFound(f"Model versions are numbers; got {version!r}.")
    served = _served(state.deployment(name), int(version) if version else None)
    body = _json_body(raw)
    frame, top = frame_from_v2(body, list(served.model.signature.columns))
    result, inputs = _explain_rows(served, frame, state.feature_store, None)
    n, k = result.contributions.shape
    ranked = result.top(top)
    outputs = [
        _tensor("contributions", [n, k], result.contributions.reshape(-1)),
        _tensor("base_value", [n], result.base_values),
        _tensor("raw_score", [n], result.raw_scores),
        _tensor("prediction", [n], result.predictions()),
    ]
    if top is not None:
        outputs.append(
            {
                "name": "top_features",
                "datatype": "BYTES",
                "shape": [n, min(top, k)],
                "data": [feature for row in ranked for feature, _ in row],
            }
        )
    answer: dict[str, Any] = {
        "model_name": name,
        "model_version": str(served.version),
        "parameters": {
            "features": list(result.features),
            "space": result.space,
            "method": result.method,
        },
        "outputs": outputs,
    }
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        answer["id"] = body["id"]
    return Explained(answer, served, inputs, result.predictions())


def _tensor(name: str, shape: list[int], values: np.ndarray) -> dict[str, Any]:
    return {"name": name, "datatype": "FP64", "shape": shape, "data": values.tolist()}


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def add_explain_routes(app: FastAPI, state: ServingStateLike) -> None:
    """Mount the v1 and v2 explain routes on ``app``."""

    async def run(fn: Callable[..., Explained], protocol: str, name: str, *args: Any
                  ) -> JSONResponse:
        started = time.perf_counter()
        try:
            try:
                explained = await run_in_threadpool(fn, state, name, *args)
            except RecursionError:
                raise InvalidRequest("The request body is nested too deeply.") from None
        except Exception as exc:
            state.log_failure(name, protocol, exc, started, new_request_id())
            raise
        if state.logger is not None:
            latency_ms = (time.perf_counter() - started) * 1000
            state.logger.submit([explained.log_entry(protocol, latency_ms)])
        return JSONResponse(explained.answer)

    @app.post("/v1/models/{name}:explain", openapi_extra=_body_doc(_V1_BODY))
    async def explain_v1(name: str, request: Request) -> JSONResponse:
        """Per-feature contributions for rows, by the version on the primary route."""
        return await run(_v1, "v1-explain", name, await request.body())

    @app.post("/v2/models/{name}/explain", openapi_extra=_body_doc(_V2_BODY))
    async def explain_v2(name: str, request: Request) -> JSONResponse:
        """Per-feature contributions as OIP v2 output tensors."""
        return await run(_v2, "v2-explain", name, None, await request.body())

    @app.post("/v2/models/{name}/versions/{version}/explain", openapi_extra=_body_doc(_V2_BODY))
    async def explain_v2_version(name: str, version: str, request: Request) -> JSONResponse:
        """Per-feature contributions by one loaded version."""
        return await run(_v2, "v2-explain", name, version, await request.body())
