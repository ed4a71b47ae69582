"""The prediction service: ``create_app(...)`` returns a FastAPI app.

    POST /v1/models/{name}:predict   KServe v1 {"instances": [...]}, or {"rows": [...]} |
                                     {"columns": {...}}; optional "request_ids", "row_ids",
                                     "now" (as-of time for online features)
    GET  /v1/models                  loaded models: versions per route, aliases, routing
    GET  /v1/models/{name}           one of them, with "ready", inputs and feature refs
                                     (the v1 routes: ``serving.routes.v1``)
    POST /v1/models/{name}/feedback  ground-truth labels by request id or row id
    /v2/...                          Open Inference Protocol (``serving.routes.v2``)
    gRPC inference.GRPCInferenceService  the same protocol over gRPC on ``grpc_port``, when set
                                     (``serving.routes.grpc``)
    /admin/models/{name}/...         promote, roll back (``serving.routes.admin``; admin keys)
    GET  /health, /ready             liveness, readiness
    GET  /metrics                    Prometheus text format
    /features/...                    the feature server, when a feature store is configured

Errors answer with the error's HTTP status and the body of
:func:`ctloop.serving.errors.error_body` (the message in ``error`` on protocol
routes). Every prediction request, answered or not, is logged.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ctloop.core.errors import CtloopError
from ctloop.core.settings import Settings, load_settings
from ctloop.metadata.base import MetadataStore
from ctloop.registry import ModelRegistry
from ctloop.requestlog.records import PredictionLog
from ctloop.requestlog.writer import LogWriter, RequestLogger
from ctloop.serving.config import ServingConfig
from ctloop.serving.dataplane import (
    ServingState,
    json_response,
    log_denied,
    readiness,
)
from ctloop.serving.direct import DirectApp
from ctloop.serving.errors import error_body
from ctloop.serving.metrics import CONTENT_TYPE, ServingMetrics
from ctloop.serving.pool import ModelPool
from ctloop.serving.routes.explain import add_explain_routes
from ctloop.serving.scoring.predict import Scorer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.types import ASGIApp

    from ctloop.artifacts.base import ArtifactStore
    from ctloop.features import FeatureStore
    from ctloop.serving.auth import App
    from ctloop.serving.routes.grpc import GrpcServer

    GrpcStart = Callable[[ServingState, dict[str, dict[str, Any]]], Awaitable[GrpcServer]]

__all__ = ["ServingApp", "ServingState", "create_app", "json_response"]

# What ``create_app`` returns, named here so that packages above serving (deploy) can
# type it without importing the web framework themselves.
ServingApp = FastAPI

log = logging.getLogger("ctloop.serving")

def create_app(
    models: str | list[str] | None = None,
    *,
    config: ServingConfig | None = None,
    settings: Settings | None = None,
    metadata: MetadataStore | str | None = None,
    artifacts: ArtifactStore | str | None = None,
    feature_store: FeatureStore | bool | None = None,
    prediction_log: PredictionLog | str | bool | None = None,
    preload: bool = False,
) -> FastAPI:
    """The prediction service for ``models`` (default: every model holding the alias).

    Stores default to the project's settings; ``config`` to the
    ``[ctloop.serving]`` table. ``feature_store=False`` and
    ``prediction_log=False`` turn those parts off. Models load when the app
    starts (lifespan) and follow the registry every ``reload_interval`` seconds;
    ``preload=True`` starts loading them at once, while the app is built and the server
    starts (``ctloop serve``: a shorter cold start). API keys come from ``config.keys``
    and ``CTLOOP_SERVING_KEYS``.
    """
    from ctloop.serving.auth import KeyGuard, keys_from_env

    settings = settings or load_settings()
    config = config or ServingConfig.from_table(settings.tables.serving)
    if models:
        config = config.with_(models=(models,) if isinstance(models, str) else tuple(models))
    keys = {**config.keys, **keys_from_env()}
    closers: list[Any] = []
    store = _metadata(metadata, settings, closers)
    pool = ModelPool(ModelRegistry(store), _artifacts(artifacts, settings), config)
    if preload:
        pool.preload()
    fs = _feature_store(feature_store, config, settings, store, closers)
    plog, opened = _prediction_log(prediction_log, config, settings)
    state = ServingState(
        config=config,
        pool=pool,
        metrics=ServingMetrics(),
        feature_store=fs,
        logger=_log_writer(plog, opened),
        prediction_log=plog,
        scorer=Scorer(config, fs),
        closers=closers,
    )
    state.pool.unload_hooks.append(state.scorer.forget)
    if state.logger is not None:
        state.metrics.watch_log(state.logger.stats)
    start_grpc = _grpc_starter(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        await run_in_threadpool(state.pool.first_refresh)
        grpc = None if start_grpc is None else await start_grpc(state, keys)
        app.state.grpc_port = None if grpc is None else grpc.port  # the bound one, for port 0
        state.pool.start()
        try:
            with _tuned_interpreter():
                yield
        finally:
            if grpc is not None:
                await grpc.stop()
            await run_in_threadpool(state.close)

    app = DirectApp(title="ctloop prediction service", lifespan=lifespan)
    app.state.serving = state
    app.state.keys_enabled = bool(keys)
    _add_error_handlers(app)
    _add_health_routes(app, state)
    from ctloop.serving.routes import admin, feedback, v1, v2

    v1.add_routes(app, state)
    v2.add_routes(app, state)
    feedback.add_routes(app, state)
    admin.add_routes(app, state, keys_enabled=bool(keys))
    add_explain_routes(app, state)
    if fs is not None:
        from ctloop.features.server import FeatureMetrics, feature_router

        app.include_router(
            feature_router(fs, metrics=FeatureMetrics(state.metrics.registry))
        )

    def guarded(inner: ASGIApp) -> ASGIApp:
        guard = KeyGuard(cast("App", inner), keys=keys, public=config.public,
                         on_deny=lambda path, status, error: log_denied(state, path, status,
                                                                         error))
        return cast("ASGIApp", guard)  # auth types its scope as a dict, starlette a mapping

    if keys:  # every route but the predict ones; those get their own guard in front
        app.add_middleware(guarded)
    app.set_front(guarded if keys else None)
    return app


_tuning_lock = threading.Lock()
_tuning_users = 0
_tuning_saved: tuple[tuple[int, int, int], float] | None = None


@contextmanager
def _tuned_interpreter() -> Iterator[None]:
    """The interpreter tuned for serving while any app of this process serves.

    - Background threads (request log, registry poll) hand the interpreter back to the
      event loop within 0.5 ms instead of Python's default 5 ms.
    - The cyclic garbage collector stays off the request path: what is loaded by now
      (modules, the app, the models: hundreds of thousands of objects) lives as long as
      the server, yet every full collection walked all of it, tens of ms with the event
      loop stopped, the slowest requests at c=32 (issue 21). ``gc.freeze`` leaves it out of
      every collection, and a larger first generation collects the requests' short-lived
      cycles less often, in one go.

    Counted, because one process may serve several apps at once (a replay's span service
    beside another, tests): the first to start saves what it found, the last to stop
    restores it, so no app's shutdown unfreezes another's objects.
    """
    global _tuning_users, _tuning_saved
    with _tuning_lock:
        _tuning_users += 1
        if _tuning_users == 1:
            saved = _tuning_saved = (gc.get_threshold(), sys.getswitchinterval())
            sys.setswitchinterval(min(saved[1], 0.0005))
            gc.freeze()  # no collect first: it would cost the cold start ~0.1 s
            gc.set_threshold(max(saved[0][0], _GC_YOUNG), saved[0][1], saved[0][2])
    try:
        yield
    finally:
        with _tuning_lock:
            _tuning_users -= 1
            if _tuning_users == 0 and _tuning_saved is not None:
                gc.set_threshold(*_tuning_saved[0])
                gc.unfreeze()
                sys.setswitchinterval(_tuning_saved[1])
                _tuning_saved = None


_GC_YOUNG = 20_000


# --- health and metrics -----------------------------------------------------------------------


def _add_health_routes(app: FastAPI, state: ServingState) -> None:
    @app.get("/health")
    def health() -> dict[str, object]:
        """Alive; ``degraded`` (still 200) while the request log cannot keep every answer."""
        if state.logger is None:
            return {"status": "ok"}
        log = state.logger.stats()
        if not log.degraded:
            return {"status": "ok"}
        return {"status": "degraded", "request_log": {
            "failing": log.failing, "unlogged_rows": log.unlogged_rows,
            "lost_rows": log.lost_rows, "pending_rows": log.pending_rows}}

    @app.get("/")
    def alive() -> dict[str, str]:
        """Liveness where KServe's server answers it (the KServe SDK's v1 is_server_live)."""
        return {"status": "alive"}

    @app.get("/ready")
    def ready() -> Any:
        ok, out = readiness(state)
        return JSONResponse(out, status_code=200 if ok else 503)

    @app.get("/metrics")
    def prometheus() -> Response:
        for name, d in state.pool.deployments.items():
            for s in (*d.routes, *([d.shadow] if d.shadow else [])):
                state.metrics.loaded.labels(name, s.route).set(s.version)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)


def _error(request: Request, status: int, error: str, detail: str, kind: str,
           headers: dict[str, str] | None = None) -> Response:
    return json_response(error_body(request.url.path, error, detail, kind), status,
                         headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CtloopError)
    async def ctloop_error(request: Request, exc: CtloopError) -> Response:
        return _error(request, exc.http_status, exc.headline, exc.message, type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return _error(request, 422, "invalid request", detail, "InvalidRequest")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = str(exc.detail)
        if exc.status_code == 404:
            detail = (
                f"No route {request.method} {request.url.path}. Predict with POST "
                "/v1/models/NAME:predict or /v2/models/NAME/infer; list models with "
                "GET /v1/models."
            )
        return _error(request, exc.status_code, "http error", detail, "HTTPException",
                      dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error while serving a request")
        return _error(request, 500, "internal error", f"{type(exc).__name__}: {exc}",
                      type(exc).__name__)


# --- wiring -----------------------------------------------------------------------------------


def _grpc_starter(config: ServingConfig) -> GrpcStart | None:
    """``routes.grpc.start_grpc`` when ``grpc_port`` is set; fails now if the extra is missing."""
    if config.grpc_port is None:
        return None
    try:
        from ctloop.serving.routes.grpc import start_grpc
    except ImportError as exc:
        from ctloop.core.errors import BackendUnavailable

        raise BackendUnavailable(
            f"Serving gRPC (grpc_port, --grpc-port) needs the grpc extra: "
            f"pip install 'ctloop[grpc]' ({exc.msg})."
        ) from None
    return start_grpc


def _metadata(
    arg: MetadataStore | str | None, settings: Settings, closers: list[Any]
) -> MetadataStore:
    if arg is not None and not isinstance(arg, str):
        return arg
    from ctloop.metadata import open_metadata_store

    store = open_metadata_store(arg or settings.metadata_url)
    closers.append(store.close)
    return store


def _artifacts(arg: ArtifactStore | str | None, settings: Settings) -> ArtifactStore:
    if arg is not None and not isinstance(arg, str):
        return arg
    from ctloop.artifacts import open_artifact_store

    return open_artifact_store(arg or settings.artifacts_url)


def _feature_store(
    arg: FeatureStore | bool | None,
    config: ServingConfig,
    settings: Settings,
    metadata: MetadataStore,
    closers: list[Any],
) -> FeatureStore | None:
    if arg is False:
        return None
    if arg is not None and arg is not True:
        return arg
    if not config.features and _empty_catalog(metadata):
        return None  # nothing to serve, and no need to import the feature store
    from ctloop.features import FeatureStore

    if config.features:
        fs = FeatureStore.from_file(
            config.features, online_store=settings.online_store_url, metadata=metadata
        )
    else:
        try:
            fs = FeatureStore.open(metadata=metadata, online_store=settings.online_store_url)
        except CtloopError as exc:
            log.info("no feature catalog to serve online features from: %s", exc.one_line())
            return None
        if not fs.views:
            return None
    closers.append(fs.close)
    return fs


def _empty_catalog(metadata: MetadataStore) -> bool:
    try:
        return not metadata.list_definitions()
    except CtloopError:
        return False  # FeatureStore.open meets it again and says why


def _prediction_log(
    arg: PredictionLog | str | bool | None, config: ServingConfig, settings: Settings
) -> tuple[PredictionLog | None, bool]:
    """The service's prediction log, and whether the service opened it itself."""
    if arg is False or (arg is None and config.prediction_log == ""):
        return None, False
    if arg is not None and arg is not True and not isinstance(arg, str):
        return arg, False
    from ctloop.requestlog.log import open_prediction_log

    url = arg if isinstance(arg, str) else config.prediction_log
    return open_prediction_log(url or None, settings=settings), True


def _log_writer(plog: PredictionLog | None, opened: bool) -> LogWriter | None:
    """A writer process for a log the service opened from its settings (``writer =
    "process"``, the default); a thread for a log object the caller handed in (which
    only exists in this process) or with ``writer = "thread"``."""
    if plog is None:
        return None
    from ctloop.requestlog.log import SegmentedPredictionLog

    if opened and isinstance(plog, SegmentedPredictionLog) and plog.options.writer == "process":
        from ctloop.requestlog.process import ProcessLogger

        return ProcessLogger(plog)
    return RequestLogger(plog)


