"""KServe v1 routes: predict, the model list and one model's description.

The body is decoded and the answer encoded by :mod:`ctloop.serving.protocols.v1`;
the request runs through :func:`ctloop.serving.dataplane.serve_prediction`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ctloop.serving.body import loads
from ctloop.serving.errors import InvalidRequest, error_body
from ctloop.serving.inputs import Inputs
from ctloop.serving.openapi import V1_PREDICT, body
from ctloop.serving.pool import Deployment
from ctloop.serving.protocols.v1 import encode, parse_v1
from ctloop.serving.scoring.answer import is_tensor_model
from ctloop.serving.scoring.predict import Scored

if TYPE_CHECKING:
    from ctloop.serving.dataplane import Respond, ServingState

__all__ = ["add_routes"]


def add_routes(app: FastAPI, state: ServingState) -> None:
    from ctloop.serving.dataplane import json_response, serve_prediction

    config = state.config

    async def parse(raw: bytes, _: Request, deployment: Deployment) -> tuple[Inputs, Respond]:
        signature = deployment.routes[0].model.signature
        if is_tensor_model(deployment.routes[0].model):
            raise InvalidRequest(
                f"Model {deployment.name!r} takes tensors "
                f"({', '.join(t.name for t in signature.tensors)}); send them to "
                f"/v2/models/{deployment.name}/infer (Open Inference Protocol)."
            )
        inputs = parse_v1(loads(raw, config.max_json_depth), signature.columns)

        def respond(scored: Scored) -> Response:
            return json_response(encode(deployment.name, inputs, scored))

        return inputs, respond

    @app.post(
        "/v1/models/{name}:predict",
        openapi_extra=body(V1_PREDICT),
        summary="Predict (KServe v1, ctloop rows/columns)",
    )
    async def predict(name: str, request: Request) -> Response:
        return await serve_prediction(state, request, name, protocol="v1", endpoint="predict",
                                      parse=parse)

    @app.get("/v1/models")
    def listing() -> Response:
        deployments = state.pool.deployments
        return json_response({
            "models": [state.describe(deployments[n]) for n in sorted(deployments)],
            "errors": state.pool.errors,
            "refreshed_at": state.pool.refreshed_at,
        })

    @app.get("/v1/models/{name}")
    def detail(name: str) -> Any:
        if name.endswith(":predict"):
            out = error_body(f"/v1/models/{name}", "method not allowed",
                             f"Predict with POST /v1/models/{name}, not GET.", "HTTPException")
            return JSONResponse(out, status_code=405, headers={"Allow": "POST"})
        return json_response(state.describe(state.deployment(name)))
