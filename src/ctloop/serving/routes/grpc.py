"""The Open Inference Protocol's gRPC binding, served by the same process as HTTP.

``GRPCInferenceService`` (ServerLive, ServerReady, ModelReady, ServerMetadata,
ModelMetadata, ModelInfer) runs on a ``grpc.aio`` server in the app's own
event loop, started and stopped by its lifespan when ``grpc_port`` is set.
An infer call goes through ``dataplane.run_prediction`` like an HTTP one, so
it shares the routes (canary, A/B, shadow), the micro-batches (gRPC and HTTP
rows of one version coalesce), the request log (protocol ``v2-grpc``, with
the HTTP-equivalent status) and the metrics. API keys are the HTTP service's:
metadata ``authorization: Bearer KEY`` or ``x-api-key: KEY``, the same roles.
Errors answer the status code matching the HTTP one (404 NOT_FOUND, 400/422
INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 503
UNAVAILABLE) with the same one-line message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc
import grpc.aio

import ctloop
from ctloop.core.errors import ConfigError, CtloopError, NotFound
from ctloop.serving.auth import ApiKey, KeyGuard
from ctloop.serving.dataplane import readiness, run_prediction
from ctloop.serving.errors import NotReady
from ctloop.serving.inputs import Inputs, new_request_id
from ctloop.serving.proto import grpc_predict_v2_pb2 as pb
from ctloop.serving.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from ctloop.serving.protocols.grpc import (
    PROTOCOL,
    infer_response,
    metadata_response,
    parse_grpc_infer,
)
from ctloop.serving.routes.v2 import metadata, pinned

if TYPE_CHECKING:
    from ctloop.serving.dataplane import ServingState
    from ctloop.serving.pool import Deployment
    from ctloop.serving.scoring.predict import Scored

    Context = grpc.aio.ServicerContext[Any, Any]

__all__ = ["GrpcServer", "start_grpc"]

log = logging.getLogger("ctloop.serving")

Resp = TypeVar("Resp")


def _status(http_status: int) -> grpc.StatusCode:
    """The gRPC code for an HTTP-equivalent status."""
    codes = {
        400: grpc.StatusCode.INVALID_ARGUMENT, 422: grpc.StatusCode.INVALID_ARGUMENT,
        401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED,
        404: grpc.StatusCode.NOT_FOUND, 409: grpc.StatusCode.ALREADY_EXISTS,
        413: grpc.StatusCode.RESOURCE_EXHAUSTED, 503: grpc.StatusCode.UNAVAILABLE,
    }
    if http_status in codes:
        return codes[http_status]
    return (grpc.StatusCode.FAILED_PRECONDITION if 400 <= http_status < 500
            else grpc.StatusCode.INTERNAL)


@dataclass(frozen=True)
class _Denial:
    status: int
    message: str


class _Keys:
    """The HTTP service's API keys and roles, read from gRPC metadata."""

    def __init__(self, keys: Mapping[str, Mapping[str, Any]], public: tuple[str, ...]) -> None:
        async def unused(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
            raise AssertionError("the key guard only checks keys here")

        self.guard = KeyGuard(unused, keys=keys, public=public) if keys else None
        self.public = frozenset(public)

    def check(self, context: Context, role: str | None) -> tuple[ApiKey | None, _Denial | None]:
        """(the key, None) when the call may go on; (None, why) when it may not."""
        if self.guard is None or role is None:
            return None, None
        presented = _presented(context.invocation_metadata() or ())
        if presented is None:
            return None, _Denial(401, "This call needs an API key: send metadata "
                                 "'authorization: Bearer KEY' or 'x-api-key: KEY'.")
        key = self.guard.find(presented)
        if key is None:
            return None, _Denial(401, "The API key is not valid.")
        if not key.allows(role):
            return None, _Denial(403, f"The key {key.name!r} (roles {sorted(key.roles)}) may not "
                                 f"do this; it needs the {role!r} role.")
        return key, None


def _presented(metadata: Any) -> str | None:
    for name, value in metadata:
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if name == "authorization":
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == "x-api-key" and text.strip():
            return text.strip()
    return None


def _metadata_value(context: Context, wanted: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == wanted:
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return None


class _Servicer:
    """``inference.GRPCInferenceService`` over one app's ``ServingState``."""

    def __init__(self, state: ServingState, keys: _Keys) -> None:
        self.state = state
        self.keys = keys

    async def _guard(self, context: Context, role: str | None) -> None:
        _, denial = self.keys.check(context, role)
        if denial is not None:
            await _abort(context, denial.status, denial.message)

    async def _answer(self, context: Context, role: str | None,
                      make: Callable[[], Resp]) -> Resp:
        await self._guard(context, role)
        try:
            return make()
        except CtloopError as exc:
            await _abort(context, exc.http_status, exc.message)

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context
                         ) -> pb.ServerLiveResponse:
        return await self._answer(context, self._health(), lambda: pb.ServerLiveResponse(
            live=True))

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context
                          ) -> pb.ServerReadyResponse:
        return await self._answer(context, self._health(), lambda: pb.ServerReadyResponse(
            ready=readiness(self.state)[0]))

    def _health(self) -> str | None:
        return None if "health" in self.keys.public else "read"

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context
                         ) -> pb.ModelReadyResponse:
        def ready() -> pb.ModelReadyResponse:
            try:
                self._deployment(request.name, request.version)
            except (NotReady, NotFound):  # a probe: an unknown model is simply not ready
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=True)

        return await self._answer(context, "read", ready)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context
                             ) -> pb.ServerMetadataResponse:
        return await self._answer(context, "read", lambda: pb.ServerMetadataResponse(
            name="ctloop", version=ctloop.__version__, extensions=[]))

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context
                            ) -> pb.ModelMetadataResponse:
        def describe() -> pb.ModelMetadataResponse:
            deployment = self._deployment(request.name, request.version)
            return metadata_response(metadata(deployment, deployment.routes[0]))

        return await self._answer(context, "read", describe)

    def _deployment(self, name: str, version: str) -> Deployment:
        deployment = self.state.deployment(name)
        return pinned(deployment, version) if version else deployment

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context
                         ) -> pb.ModelInferResponse:
        request_id = _metadata_value(context, "x-request-id")
        _, denial = self.keys.check(context, "predict")
        if denial is not None:
            self.state.metrics.denied.labels(str(denial.status)).inc()
            if self.state.denied_sample.take(time.monotonic()):  # anyone may send these
                self.state.log_rejected(
                    request.model_name, PROTOCOL, denial.status,
                    f"unauthorized: {denial.message}" if denial.status == 401
                    else f"forbidden: {denial.message}", time.perf_counter(),
                    request_id or new_request_id())
            await _abort(context, denial.status, denial.message)

        async def read() -> pb.ModelInferRequest:
            return request

        async def parse(message: pb.ModelInferRequest, deployment: Deployment
                        ) -> tuple[Inputs, Callable[[Scored], pb.ModelInferResponse]]:
            infer = parse_grpc_infer(message, deployment.routes[0].model)
            return infer.inputs, lambda scored: infer_response(deployment.name, infer, scored)

        version = request.model_version
        try:
            return await run_prediction(
                self.state, request.model_name, protocol=PROTOCOL, endpoint="infer",
                request_id=request_id, read=read, parse=parse, status_of=lambda _: 200,
                pin=(lambda d: pinned(d, version)) if version else None,
            )
        except CtloopError as exc:
            await _abort(context, exc.http_status, exc.message)
        except Exception as exc:
            log.exception("unexpected error while serving a gRPC infer call")
            await _abort(context, 500, f"{type(exc).__name__}: {exc}")


async def _abort(context: Context, http_status: int, message: str) -> NoReturn:
    await context.abort(_status(http_status), message)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


@dataclass
class GrpcServer:
    """A started gRPC server: where it listens and how to stop it."""

    server: grpc.aio.Server
    host: str
    port: int

    async def stop(self, grace: float = 1.0) -> None:
        await self.server.stop(grace)


async def start_grpc(state: ServingState, keys: Mapping[str, Mapping[str, Any]]
                     ) -> GrpcServer:
    """Start the gRPC service on ``state.config.grpc_host:grpc_port`` (0: a free port)."""
    config = state.config
    host, port = config.grpc_host, config.grpc_port or 0
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", config.max_body_bytes),
        ("grpc.so_reuseport", 1),  # `ctloop serve --workers N`: every worker on one port
    ])
    add: Callable[[Any, Any], None] = pb_grpc.add_GRPCInferenceServiceServicer_to_server
    add(_Servicer(state, _Keys(keys, config.public)), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(
            f"The gRPC service cannot listen on {address} ({exc}); choose another "
            "grpc_port (--grpc-port)."
        ) from None
    await server.start()
    log.info("gRPC inference service on %s:%d", host, bound)
    return GrpcServer(server, host, bound)

