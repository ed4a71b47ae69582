"""Open Inference Protocol (v2) REST routes: health, server and model metadata, infer.

``/v2/models/{name}`` answers for the deployment (its routes and canary
split); ``/v2/models/{name}/versions/{v}`` pins one loaded version and
bypasses the split. Errors answer ``{"error": "..."}`` as the protocol says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

import ctloop
from ctloop.core.errors import NotFound
from ctloop.serving.body import loads
from ctloop.serving.errors import NotReady
from ctloop.serving.inputs import Inputs
from ctloop.serving.openapi import V2_INFER, body
from ctloop.serving.pool import Deployment, Served
from ctloop.serving.protocols.v2 import (
    datatype_of,
    encode_outputs,
    output_metadata,
    output_names,
    output_tensors,
    parse_infer,
    split_binary,
    tensor_specs,
)
from ctloop.serving.scoring.answer import classes_of, kind_of
from ctloop.serving.scoring.predict import Scored
from ctloop.serving.scoring.routing import Router

if TYPE_CHECKING:
    from ctloop.serving.dataplane import Respond, ServingState

__all__ = ["add_routes"]

EXTENSIONS = ["binary_tensor_data"]


def _served(deployment: Deployment) -> list[Served]:
    return [*deployment.routes, *([deployment.shadow] if deployment.shadow else [])]


def pinned(deployment: Deployment, version: str) -> Deployment:
    """The deployment reduced to one loaded version (404 when it is not loaded)."""
    for served in _served(deployment):
        if str(served.version) == version:
            return Deployment(deployment.name, (served,), Router(served.route), None,
                              deployment.aliases)
    loaded = sorted({s.version for s in _served(deployment)})
    raise NotFound(
        f"Version {version!r} of model {deployment.name!r} is not served here; loaded "
        f"versions: {', '.join(map(str, loaded))}."
    )


def metadata(deployment: Deployment, served: Served) -> dict[str, Any]:
    """Model metadata: inputs, outputs and, in ``parameters``, the task and class names."""
    model = served.model
    kind = kind_of(model)
    if kind == "tensor":
        inputs = [t.to_dict() for t in tensor_specs(model)]
    else:
        inputs = [{"name": s.name, "datatype": datatype_of(s), "shape": [-1]}
                  for s in model.signature.inputs]
    parameters: dict[str, Any] = {"task": kind}
    if kind in ("binary", "multiclass"):
        parameters["classes"] = list(classes_of(model, kind))
    return {
        "name": deployment.name,
        "versions": [str(v) for v in sorted({s.version for s in _served(deployment)})],
        "platform": f"ctloop_{model.flavor}",
        "inputs": inputs,
        "outputs": output_metadata(model),
        "parameters": parameters,
    }


def add_routes(app: FastAPI, state: ServingState) -> None:
    from ctloop.serving.dataplane import json_response, readiness, serve_prediction

    config = state.config

    @app.get("/v2", summary="Server metadata (Open Inference Protocol)")
    def server() -> Response:
        return json_response(
            {"name": "ctloop", "version": ctloop.__version__, "extensions": EXTENSIONS}
        )

    @app.get("/v2/health/live")
    def live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready")
    def ready() -> Response:
        ok, _ = readiness(state)
        return json_response({"ready": ok}, 200 if ok else 503)

    @app.get("/v2/models/{name}")
    def model(name: str) -> Response:
        deployment = state.deployment(name)
        return json_response(metadata(deployment, deployment.routes[0]))

    @app.get("/v2/models/{name}/versions/{version}")
    def model_version(name: str, version: str) -> Response:
        deployment = pinned(state.deployment(name), version)
        return json_response(metadata(deployment, deployment.routes[0]))

    def model_ready(name: str, version: str | None) -> Response:
        try:
            deployment = state.deployment(name)
        except NotReady:
            return json_response({"name": name, "ready": False}, 503)
        if version is not None:
            deployment = pinned(deployment, version)
        return json_response({"name": name, "ready": True})

    @app.get("/v2/models/{name}/ready")
    def ready_model(name: str) -> Response:
        return model_ready(name, None)

    @app.get("/v2/models/{name}/versions/{version}/ready")
    def ready_version(name: str, version: str) -> Response:
        return model_ready(name, version)

    async def parse(raw: bytes, request: Request, deployment: Deployment
                    ) -> tuple[Inputs, Respond]:
        header, tail = split_binary(raw, request.headers.get("inference-header-content-length"))
        model = deployment.routes[0].model
        infer = parse_infer(loads(header, config.max_json_depth), tail,
                            model.signature.inputs, outputs=output_names(model),
                            tensor_specs=tensor_specs(model))
        inputs = infer.inputs

        def respond(scored: Scored) -> Response:
            outputs = output_tensors(scored.answer)
            versions = sorted({p.served.version for p in scored.parts})
            head: dict[str, Any] = {
                "model_name": deployment.name,
                "model_version": ",".join(map(str, versions)),
            }
            if infer.id is not None:
                head["id"] = infer.id
            parameters: dict[str, Any] = {"request_ids": inputs.request_ids}
            missing = scored.missing_by_row()
            if missing is not None:
                parameters["missing"] = missing
            head["parameters"] = parameters
            content, header_length = encode_outputs(infer, outputs, head)
            if header_length is None:
                return Response(content, media_type="application/json")
            return Response(content, media_type="application/octet-stream",
                            headers={"Inference-Header-Content-Length": str(header_length)})

        return inputs, respond

    @app.post("/v2/models/{name}/infer", openapi_extra=body(V2_INFER),
              summary="Infer (Open Inference Protocol)")
    async def infer(name: str, request: Request) -> Response:
        return await serve_prediction(state, request, name, protocol="v2", endpoint="infer",
                                      parse=parse)

    @app.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=body(V2_INFER),
              summary="Infer on one version (Open Inference Protocol)")
    async def infer_version(name: str, version: str, request: Request) -> Response:
        return await serve_prediction(state, request, name, protocol="v2", endpoint="infer",
                                      parse=parse, pin=lambda d: pinned(d, version))
