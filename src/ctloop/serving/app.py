"""The prediction service: ``create_app(...)`` returns a FastAPI app.

    POST /v1/models/{name}:predict   KServe v1 {"instances": [...]}, or {"rows": [...]} |
                                     {"columns": {...}}; optional "request_ids", "row_ids",
                                     "now" (as-of time for online features)
    GET  /v1/models                  loaded models: versions per route, aliases, routing
    GET  /v1/models/{name}           one of them, with "ready", inputs and feature refs
    POST /v1/models/{name}/feedback  ground-truth labels by request id or row id
    /v2/...                          Open Inference Protocol (``serving.http_v2``)
    /admin/models/{name}/...         promote, roll back (``serving.admin``; admin keys)
    GET  /health, /ready             liveness, readiness
    GET  /metrics                    Prometheus text format
    /features/...                    the feature server, when a feature store is configured

Errors answer ``{"error", "detail", "type"}`` (v2 routes: ``{"error"}``) with
the error's HTTP status. Every prediction request, answered or not, is logged.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ctloop.core.errors import CtloopError, NotFound
from ctloop.core.settings import Settings, load_settings
from ctloop.metadata.base import MetadataStore
from ctloop.monitoring.base import PredictionLog
from ctloop.registry import ModelRegistry
from ctloop.serving.body import loads, read_body
from ctloop.serving.config import ServingConfig
from ctloop.serving.errors import NotReady
from ctloop.serving.inputs import Inputs, new_request_id, parse_v1
from ctloop.serving.loader import Deployment, ModelPool
from ctloop.serving.logspool import Entry, LogSpool
from ctloop.serving.metrics import CONTENT_TYPE, UNKNOWN, ServingMetrics
from ctloop.serving.openapi import V1_PREDICT, body
from ctloop.serving.predict import Scored, Scorer, logical_time, shadow_entry
from ctloop.serving.requestlog import RequestLogger

if TYPE_CHECKING:
    from ctloop.artifacts.base import ArtifactStore
    from ctloop.features import FeatureStore

__all__ = ["ServingState", "create_app", "json_response"]

log = logging.getLogger("ctloop.serving")

_JSON = orjson.OPT_SERIALIZE_NUMPY


def json_response(content: Any, status_code: int = 200, **kwargs: Any) -> Response:
    """orjson-encoded JSON (NumPy arrays included)."""
    return Response(orjson.dumps(content, option=_JSON), status_code=status_code,
                    media_type="application/json", **kwargs)


@dataclass
class ServingState:
    """Everything a running app holds; ``app.state.serving``."""

    config: ServingConfig
    pool: ModelPool
    metrics: ServingMetrics
    feature_store: FeatureStore | None
    logger: LogSpool | None
    prediction_log: PredictionLog | None
    scorer: Scorer
    closers: list[Any]

    def deployment(self, name: str) -> Deployment:
        found = self.pool.deployments.get(name)
        if found is not None:
            return found
        served = set(self.pool.deployments) | set(self.pool.errors) | set(self.config.models)
        if name in served:
            why = "; ".join(self.pool.errors.get(name, {}).values()) or "loading"
            raise NotReady(f"Model {name!r} has no version loaded yet ({why}).")
        raise NotFound(
            f"No model {name!r} is served here; served models: "
            f"{', '.join(sorted(served)) or 'none'}."
        )

    def label(self, name: str) -> str:
        """``name`` as a metrics label: served names only, anything else one series."""
        if name in self.pool.deployments or name in self.config.models or name in self.pool.errors:
            return name
        return UNKNOWN

    def describe(self, d: Deployment) -> dict[str, Any]:
        return {
            "name": d.name,
            "ready": True,
            "aliases": d.aliases,
            "routes": [s.describe() for s in d.routes],
            "routing": {
                "primary": d.router.primary,
                "splits": [{"route": r, **s.describe()} for r, s in d.router.splits],
                "seed": d.router.seed,
            },
            "shadow": None if d.shadow is None else d.shadow.describe(),
            "errors": self.pool.errors.get(d.name, {}),
        }

    def log_rejected(self, name: str, protocol: str, status: int, error: str,
                     started: float, request_id: str) -> None:
        if self.logger is None:
            return
        latency_ms = (time.perf_counter() - started) * 1000
        self.logger.submit([Entry(
            name, 0, "", protocol, datetime.now(UTC), latency_ms, [request_id],
            np.array([np.nan]), served=False, status=status, error=error)])

    def close(self) -> None:
        self.pool.stop()
        self.scorer.close()
        if self.logger is not None:
            self.logger.close()
        for close in self.closers:
            with suppress(Exception):
                close()


Parse = Callable[[bytes, Request, Deployment], Inputs]
Respond = Callable[[Scored], Response]


async def serve_prediction(
    state: ServingState,
    request: Request,
    name: str,
    *,
    protocol: str,
    endpoint: str,
    parse: Callable[[bytes, Request, Deployment], Awaitable[tuple[Inputs, Respond]]],
    pin: Callable[[Deployment], Deployment] | None = None,
) -> Response:
    """The shared life of a prediction request: read, parse, score, answer, log, count."""
    started = time.perf_counter()
    metrics = state.metrics
    status = 500
    scored: Scored | None = None
    request_id = request.headers.get("x-request-id")
    try:
        raw = await read_body(request, state.config.max_body_bytes)
        deployment = state.deployment(name)
        if pin is not None:
            deployment = pin(deployment)
        inputs, respond = await parse(raw, request, deployment)
        if inputs.rows == 1 and request_id is None:
            request_id = inputs.request_ids[0]
        scored = await state.scorer.score(deployment, inputs)
        response = respond(scored)
        status = response.status_code
        latency_ms = (time.perf_counter() - started) * 1000
        if state.logger is not None:
            state.logger.submit(scored.log_entries(latency_ms, logical_time(inputs.now)))
        for part in scored.parts:
            served = part.served
            metrics.rows.labels(name, str(served.version), served.route, "ok").inc(
                len(part.scores))
        if deployment.shadow is not None:
            await _shadow(state, deployment, inputs, started)
        return response
    except CtloopError as exc:
        status = exc.http_status
        state.log_rejected(name, protocol, status, exc.one_line(), started,
                           request_id or new_request_id())
        raise
    except Exception as exc:
        state.log_rejected(name, protocol, 500, f"{type(exc).__name__}: {exc}", started,
                           request_id or new_request_id())
        raise
    finally:
        label = state.label(name)
        metrics.requests.labels(label, endpoint, protocol, str(status)).inc()
        elapsed = time.perf_counter() - started
        if scored is not None:
            for part in scored.parts:
                metrics.latency.labels(
                    label, str(part.served.version), part.served.route, endpoint
                ).observe(elapsed)
        else:
            metrics.latency.labels(label, "none", "none", endpoint).observe(elapsed)


async def _shadow(state: ServingState, deployment: Deployment, inputs: Inputs,
                  started: float) -> None:
    shadow = deployment.shadow
    assert shadow is not None
    part = await state.scorer.shadow(shadow, inputs, started)
    status = "error" if part is None else "ok"
    state.metrics.rows.labels(deployment.name, str(shadow.version), "shadow", status).inc(
        inputs.rows)
    if part is not None and state.logger is not None:
        latency_ms = (time.perf_counter() - started) * 1000
        state.logger.submit([shadow_entry(part, inputs, latency_ms, logical_time(inputs.now))])


def create_app(
    models: str | list[str] | None = None,
    *,
    config: ServingConfig | None = None,
    settings: Settings | None = None,
    metadata: MetadataStore | str | None = None,
    artifacts: ArtifactStore | str | None = None,
    feature_store: FeatureStore | bool | None = None,
    prediction_log: PredictionLog | str | bool | None = None,
) -> FastAPI:
    """The prediction service for ``models`` (default: every model holding the alias).

    Stores default to the project's settings; ``config`` to the
    ``[ctloop.serving]`` table. ``feature_store=False`` and
    ``prediction_log=False`` turn those parts off. Models load when the app
    starts (lifespan) and follow the registry every ``reload_interval`` seconds.
    API keys come from ``config.keys`` and ``CTLOOP_SERVING_KEYS``.
    """
    from ctloop.serving.auth import KeyGuard, keys_from_env

    settings = settings or load_settings()
    config = config or ServingConfig.from_table(settings.extra.get("serving"))
    if models:
        config = config.with_(models=(models,) if isinstance(models, str) else tuple(models))
    keys = {**config.keys, **keys_from_env()}
    closers: list[Any] = []
    store = _metadata(metadata, settings, closers)
    art = _artifacts(artifacts, settings)
    fs = _feature_store(feature_store, config, settings, store, closers)
    plog = _prediction_log(prediction_log, config, settings)
    state = ServingState(
        config=config,
        pool=ModelPool(ModelRegistry(store), art, config),
        metrics=ServingMetrics(),
        feature_store=fs,
        logger=LogSpool(RequestLogger(plog)) if plog is not None else None,
        prediction_log=plog,
        scorer=Scorer(config, fs),
        closers=closers,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        await run_in_threadpool(state.pool.refresh)
        state.pool.start()
        # Background threads (request log, registry poll) hand the interpreter back to
        # the event loop within 0.5 ms instead of Python's default 5 ms.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, 0.0005))
        try:
            yield
        finally:
            sys.setswitchinterval(switch)
            await run_in_threadpool(state.close)

    app = FastAPI(title="ctloop prediction service", lifespan=lifespan)
    app.state.serving = state
    app.state.keys_enabled = bool(keys)
    _add_error_handlers(app)
    _add_routes(app, state)
    from ctloop.serving import admin, feedback, http_v2

    http_v2.add_routes(app, state)
    feedback.add_routes(app, state)
    admin.add_routes(app, state, keys_enabled=bool(keys))
    if fs is not None:
        from ctloop.features.server import FeatureMetrics, feature_router

        app.include_router(
            feature_router(fs, metrics=FeatureMetrics(state.metrics.registry))
        )
    if keys:
        app.add_middleware(KeyGuard, keys=keys, public=config.public)  # type: ignore[arg-type]
    return app


# --- v1 routes --------------------------------------------------------------------------------


def _add_routes(app: FastAPI, state: ServingState) -> None:
    config = state.config

    async def parse(raw: bytes, _: Request, deployment: Deployment) -> tuple[Inputs, Respond]:
        inputs = parse_v1(loads(raw, config.max_json_depth),
                          deployment.routes[0].model.signature.columns)

        def respond(scored: Scored) -> Response:
            out: dict[str, Any] = {
                "model": deployment.name,
                "predictions": scored.scores,
                "versions": scored.versions(),
                "routes": scored.routes(),
                "request_ids": inputs.request_ids,
            }
            if scored.decisions is not None:
                out["decisions"] = scored.decisions
            missing = scored.missing_by_row()
            if missing is not None:
                out["missing"] = missing
            return json_response(out)

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
            out = {
                "error": "method not allowed",
                "type": "HTTPException",
                "detail": f"Predict with POST /v1/models/{name}, not GET.",
            }
            return JSONResponse(out, status_code=405, headers={"Allow": "POST"})
        return json_response(state.describe(state.deployment(name)))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

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


def readiness(state: ServingState) -> tuple[bool, dict[str, Any]]:
    """Whether every served model has a version loaded, and what is loaded."""
    pool = state.pool
    loaded = {n: {s.route: s.version for s in d.routes} for n, d in pool.deployments.items()}
    wanted = set(state.config.models) | set(pool.errors) | set(loaded)
    missing = sorted(wanted - set(loaded))
    ok = pool.refreshed_at is not None and bool(loaded) and not missing
    out: dict[str, Any] = {"ready": ok, "loaded": loaded, "missing": missing,
                           "errors": pool.errors}
    if not ok and pool.refreshed_at is None:
        out["detail"] = "models are still loading"
    elif not loaded:
        out["detail"] = (
            f"no model holds the alias {state.config.alias!r} yet; promote one "
            f"with `ctloop models promote NAME VERSION`"
        )
    return ok, out


# --- errors -----------------------------------------------------------------------------------


def _error(request: Request, status: int, error: str, detail: str, kind: str,
           headers: dict[str, str] | None = None) -> Response:
    if request.url.path.startswith("/v2"):
        return json_response({"error": detail}, status, headers=headers)
    return json_response({"error": error, "detail": detail, "type": kind}, status,
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
        return arg  # type: ignore[return-value]
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


def _prediction_log(
    arg: PredictionLog | str | bool | None, config: ServingConfig, settings: Settings
) -> PredictionLog | None:
    if arg is False or (arg is None and config.prediction_log == ""):
        return None
    if arg is not None and arg is not True and not isinstance(arg, str):
        return arg
    from ctloop.monitoring.log import open_prediction_log

    url = arg if isinstance(arg, str) else config.prediction_log
    return open_prediction_log(url or None, settings=settings)


