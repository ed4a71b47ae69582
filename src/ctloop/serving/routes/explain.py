"""Explanation routes: per-feature contributions over HTTP, KServe v1 and OIP v2 style.

    POST /v1/models/{name}:explain        {"instances": [...]} | {"rows": [...]} |
                                          {"columns": {...}}; optional "top", "now"
    POST /v2/models/{name}/explain        an Open Inference Protocol inference request
    POST /v2/models/{name}/versions/{v}/explain

Rows get exactly the treatment of predictions: the body is read within the same
size and depth limits and decoded by the same protocol adapters (v1 rows, v2
tensors, the binary tensor extension), missing model inputs are filled from the
online feature store, then checked against the model's signature by the same
function (``scoring.predict.checked_rows``), so every bad row gets predict's
status and message.
The version answering on the primary route is explained (v2 can name a
loaded version). The contributions of each row plus its base value add up to
its raw score (log-odds for a classifier); see ``ctloop.models.explain``.

Every explain request is written to the request log like a prediction, with
protocol ``v1-explain`` or ``v2-explain`` and ``served`` false: there is a
record of who looked at what, and the monitors (which read served rows) do
not count explanations as traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ctloop.core.errors import NotFound
from ctloop.core.lazy import lazy_module
from ctloop.models.explain import CannotExplain, Explanation, explain
from ctloop.requestlog.entries import Entry
from ctloop.requestlog.writer import LogWriter
from ctloop.serving.body import loads, read_body
from ctloop.serving.config import ServingConfig
from ctloop.serving.errors import InvalidRequest
from ctloop.serving.inputs import Inputs, new_request_id
from ctloop.serving.pool import Deployment, Served
from ctloop.serving.protocols.v1 import parse_v1
from ctloop.serving.protocols.v2 import Tensor, parse_infer, split_binary
from ctloop.serving.scoring.answer import is_tensor_model, labels_of
from ctloop.serving.scoring.features import Filled, assemble, fill, needs_lookup
from ctloop.serving.scoring.predict import checked_rows, logical_time

if TYPE_CHECKING:
    import pandas as pd

    from ctloop.features import FeatureStore
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["add_explain_routes", "explain_rows", "frame_from_v1", "frame_from_v2"]

MAX_TOP = 10_000  # features per row an answer may rank
EXPLAIN_OUTPUTS = ("contributions", "base_value", "raw_score", "prediction", "top_features",
                   "label", "class_contributions", "class_base_values", "probabilities")
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

    config: ServingConfig
    feature_store: FeatureStore | None
    logger: LogWriter | None

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
    request_ids: list[str]
    now: str | None = None

    def log_entry(self, protocol: str, latency_ms: float) -> Entry:
        scores = self.predictions if self.predictions.ndim == 1 else self.predictions.max(axis=1)
        return Entry(
            self.served.name, self.served.version, self.served.route, protocol,
            logical_time(self.now), latency_ms, self.request_ids,
            scores, {c: self.inputs[c].to_numpy() for c in self.inputs.columns},
            served=False,
        )


def _top(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP:
        raise InvalidRequest(
            f"{where} must be a positive integer up to {MAX_TOP} (how many features per row)."
        )
    return value


def _checked_frame(state: ServingStateLike, served: Served, inputs: Inputs) -> pd.DataFrame:
    """The rows as predict checks them (features filled, signature applied), as a frame."""
    needed = served.model.signature.columns
    filled = Filled(inputs.columns)
    if needs_lookup(inputs.columns, needed):
        filled = fill(inputs.columns, needed, served.feature_refs, state.feature_store,
                      now=inputs.now)
    typed = checked_rows(state.config, served, filled, inputs)
    return pd.DataFrame({c: typed[c] for c in needed})


def frame_from_v1(state: ServingStateLike, served: Served, raw: bytes
                  ) -> tuple[pd.DataFrame, Inputs, int | None]:
    """(checked rows, inputs, top) of a v1 explain body: predict's body plus ``top``."""
    body = loads(raw, state.config.max_json_depth)
    top = None
    if isinstance(body, dict) and "top" in body:
        body = dict(body)
        top = _top(body.pop("top"), "'top'")
    inputs = parse_v1(body, served.model.signature.columns)
    return _checked_frame(state, served, inputs), inputs, top


def frame_from_v2(state: ServingStateLike, served: Served, raw: bytes,
                  header_length: str | None) -> tuple[pd.DataFrame, Inputs, int | None, Any]:
    """(checked rows, inputs, top, request id) of an OIP v2 explain request."""
    header, tail = split_binary(raw, header_length)
    body = loads(header, state.config.max_json_depth)
    infer = parse_infer(body, tail, served.model.signature.inputs, outputs=EXPLAIN_OUTPUTS)
    parameters = body.get("parameters") if isinstance(body, dict) else None
    top = _top(parameters.get("top") if isinstance(parameters, dict) else None,
               "'parameters.top'")
    return _checked_frame(state, served, infer.inputs), infer.inputs, top, infer.id


def explain_rows(
    served: Served, frame: pd.DataFrame, store: FeatureStore | None, now: str | None = None
) -> Explanation:
    """Fill the rows' missing inputs from the online store and explain them (the CLI's
    ``ctloop explain`` on a file)."""
    full = assemble(frame, served.model.signature.columns, served.feature_refs, store, now=now)
    return _explain(served, full)


def _served(deployment: Deployment, version: int | None) -> Served:
    found = deployment.routes[0] if version is None else next(
        (s for s in deployment.routes if s.version == version), None)
    if found is not None:
        if is_tensor_model(found.model):
            raise CannotExplain(
                f"{found.name}:{found.version} takes N-d tensors (an ONNX graph without "
                "columns); per-feature contributions are for models that read columns."
            )
        return found
    loaded = sorted({s.version for s in deployment.routes})
    raise NotFound(
        f"Version {version} of {deployment.name!r} is not loaded here; loaded: {loaded}."
    )


def _v1(state: ServingStateLike, name: str, raw: bytes) -> Explained:
    served = _served(state.deployment(name), None)
    frame, inputs, top = frame_from_v1(state, served, raw)
    result = _explain(served, frame)
    return Explained({
        "model": name,
        "version": served.version,
        "route": served.route,
        "space": result.space,
        "method": result.method,
        "features": list(result.features),
        "explanations": result.to_rows(top),
    }, served, frame, result.predictions(), inputs.request_ids, inputs.now)


def _v2(state: ServingStateLike, name: str, version: str | None, raw: bytes,
        header_length: str | None) -> Explained:
    if version is not None and not version.isdigit():
        raise NotFound(f"Model versions are numbers; got {version!r}.")
    served = _served(state.deployment(name), int(version) if version else None)
    frame, inputs, top, request_id = frame_from_v2(state, served, raw, header_length)
    result = _explain(served, frame)
    n, k = len(frame), len(result.features)
    outputs = [
        _tensor("contributions", result.contributions),
        _tensor("base_value", result.base_values),
        _tensor("raw_score", result.raw_scores),
        _tensor("prediction", result.predictions()),
    ]
    if top is not None:
        names = np.empty((n, min(top, k)), dtype=object)
        names[:] = [[feature for feature, _ in row] for row in result.top(top)]
        outputs.append(_tensor("top_features", names))
    parameters: dict[str, Any] = {
        "features": list(result.features),
        "space": result.space,
        "method": result.method,
    }
    probabilities = result.class_probabilities()
    if (result.classes is not None and result.explained is not None
            and result.per_class is not None and probabilities is not None):
        # multiclass: the class each row's contributions explain, and every class's
        labels = labels_of(tuple(result.classes), np.asarray(result.explained, dtype=np.int64))
        outputs += [
            _tensor("label", labels),
            _tensor("class_contributions", result.per_class),
            _tensor("class_base_values", result.per_class_base),
            _tensor("probabilities", probabilities),
        ]
        parameters["classes"] = list(result.classes)
    answer: dict[str, Any] = {
        "model_name": name,
        "model_version": str(served.version),
        "parameters": parameters,
        "outputs": outputs,
    }
    if request_id is not None:
        answer["id"] = request_id
    return Explained(answer, served, frame, result.predictions(), inputs.request_ids)


def _explain(served: Served, frame: pd.DataFrame) -> Explanation:
    try:
        return explain(served.model, frame, what="The request rows")
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"The rows cannot be explained by {served.name}:{served.version}: {exc}"
        ) from exc


def _tensor(name: str, values: Any) -> dict[str, Any]:
    """An output tensor whose shape is its data's (row-major, flattened)."""
    array = np.asarray(values)
    kind = array.dtype.kind
    tensor = Tensor(name, "BYTES" if kind in "OUS" else "INT64" if kind in "iu" else "FP64",
                    array)
    data = tensor.json_data()
    return {"name": name, "datatype": tensor.datatype, "shape": tensor.shape,
            "data": data if isinstance(data, list) else data.tolist()}


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def add_explain_routes(app: FastAPI, state: ServingStateLike) -> None:
    """Mount the v1 and v2 explain routes on ``app``."""

    async def run(fn: Callable[..., Explained], protocol: str, name: str, request: Request,
                  *args: Any) -> Response:
        started = time.perf_counter()
        try:
            raw = await read_body(request, state.config.max_body_bytes)
            explained = await run_in_threadpool(fn, state, name, *args, raw, *(
                [request.headers.get("inference-header-content-length")]
                if protocol == "v2-explain" else []))
        except Exception as exc:
            state.log_failure(name, protocol, exc, started, new_request_id())
            raise
        if state.logger is not None:
            latency_ms = (time.perf_counter() - started) * 1000
            state.logger.submit([explained.log_entry(protocol, latency_ms)])
        return Response(orjson.dumps(explained.answer, option=orjson.OPT_SERIALIZE_NUMPY),
                        media_type="application/json")

    @app.post("/v1/models/{name}:explain", openapi_extra=_body_doc(_V1_BODY))
    async def explain_v1(name: str, request: Request) -> Response:
        """Per-feature contributions for rows, by the version on the primary route."""
        return await run(_v1, "v1-explain", name, request)

    @app.post("/v2/models/{name}/explain", openapi_extra=_body_doc(_V2_BODY))
    async def explain_v2(name: str, request: Request) -> Response:
        """Per-feature contributions as OIP v2 output tensors."""
        return await run(_v2, "v2-explain", name, request, None)

    @app.post("/v2/models/{name}/versions/{version}/explain", openapi_extra=_body_doc(_V2_BODY))
    async def explain_v2_version(name: str, version: str, request: Request) -> Response:
        """Per-feature contributions by one loaded version."""
        return await run(_v2, "v2-explain", name, request, version)
