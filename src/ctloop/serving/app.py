"""The prediction service: ``create_app(...)`` returns a FastAPI app.

    POST /v1/models/{name}:predict   {"rows": [...]} | {"columns": {...}}, optional
                                     "request_ids", "now" (as-of time for online features)
    GET  /v1/models                  loaded models: versions per route, aliases, routing
    GET  /v1/models/{name}           one of them, with inputs and feature refs
    GET  /health                     liveness
    GET  /ready                      200 once every served model has a version loaded
    GET  /metrics                    Prometheus text format
    /features/...                    the feature server, when a feature store is configured

Errors answer ``{"error", "detail", "type"}`` with the error's HTTP status.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ctloop.core.errors import CtloopError, NotFound
from ctloop.core.settings import Settings, load_settings
from ctloop.metadata.base import MetadataStore
from ctloop.monitoring.base import PredictionLog
from ctloop.registry import ModelRegistry
from ctloop.serving.config import ServingConfig
from ctloop.serving.errors import InvalidRequest, NotReady
from ctloop.serving.explain import add_explain_routes
from ctloop.serving.loader import Deployment, ModelPool
from ctloop.serving.metrics import CONTENT_TYPE, ServingMetrics
from ctloop.serving.predict import parse_body, score, score_shadow
from ctloop.serving.requestlog import RequestLogger

if TYPE_CHECKING:
    from ctloop.artifacts.base import ArtifactStore
    from ctloop.features import FeatureStore

__all__ = ["ServingState", "create_app"]

log = logging.getLogger("ctloop.serving")


@dataclass
class ServingState:
    """Everything a running app holds; ``app.state.serving``."""

    config: ServingConfig
    pool: ModelPool
    metrics: ServingMetrics
    feature_store: FeatureStore | None
    logger: RequestLogger | None
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

    def describe(self, d: Deployment) -> dict[str, Any]:
        return {
            "name": d.name,
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

    def close(self) -> None:
        self.pool.stop()
        if self.logger is not None:
            self.logger.close()
        for close in self.closers:
            with suppress(Exception):
                close()


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
    """
    settings = settings or load_settings()
    config = config or ServingConfig.from_table(settings.extra.get("serving"))
    if models:
        config = config.with_(models=(models,) if isinstance(models, str) else tuple(models))
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
        logger=RequestLogger(plog) if plog is not None else None,
        closers=closers,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        await run_in_threadpool(state.pool.refresh)
        state.pool.start()
        try:
            yield
        finally:
            await run_in_threadpool(state.close)

    app = FastAPI(title="ctloop prediction service", lifespan=lifespan)
    app.state.serving = state
    _add_error_handlers(app)
    _add_routes(app, state)
    add_explain_routes(app, state)
    if fs is not None:
        from ctloop.features.server import feature_router

        app.include_router(feature_router(fs))
    return app


# --- routes -----------------------------------------------------------------------------------


def _add_routes(app: FastAPI, state: ServingState) -> None:
    metrics = state.metrics

    def predict_sync(name: str, raw: bytes, background: BackgroundTasks) -> dict[str, Any]:
        started = time.perf_counter()
        status = "200"
        try:
            deployment = state.deployment(name)
            request = parse_body(raw)
            scored = score(deployment, request, state.feature_store, started=started)
            if state.logger is not None:
                state.logger.submit(scored.batches)
            for batch in scored.batches:
                metrics.rows.labels(name, str(batch.model_version), batch.route, "ok").inc(
                    len(batch.request_ids)
                )
            if deployment.shadow is not None:
                background.add_task(_shadow, state, deployment, request)
            return scored.body(deployment, request.request_ids)
        except CtloopError as exc:
            status = str(exc.http_status)
            raise
        except Exception:
            status = "500"
            raise
        finally:
            metrics.requests.labels(name, status).inc()
            metrics.latency.labels(name).observe(time.perf_counter() - started)

    @app.post("/v1/models/{name}:predict")
    async def predict(name: str, request: Request, background: BackgroundTasks) -> Any:
        raw = await request.body()
        body = await run_in_threadpool(predict_sync, name, raw, background)
        return JSONResponse(body)

    @app.get("/v1/models")
    def listing() -> dict[str, Any]:
        deployments = state.pool.deployments
        return {
            "models": [state.describe(deployments[n]) for n in sorted(deployments)],
            "errors": state.pool.errors,
            "refreshed_at": state.pool.refreshed_at,
        }

    @app.get("/v1/models/{name}")
    def detail(name: str) -> Any:
        if name.endswith(":predict"):
            body = {
                "error": "method not allowed",
                "type": "HTTPException",
                "detail": f"Predict with POST /v1/models/{name}, not GET.",
            }
            return JSONResponse(body, status_code=405, headers={"Allow": "POST"})
        return state.describe(state.deployment(name))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> Any:
        pool = state.pool
        loaded = {n: {s.route: s.version for s in d.routes} for n, d in pool.deployments.items()}
        wanted = set(state.config.models) | set(pool.errors) | set(loaded)
        missing = sorted(wanted - set(loaded))
        ok = pool.refreshed_at is not None and bool(loaded) and not missing
        body = {"ready": ok, "loaded": loaded, "missing": missing, "errors": pool.errors}
        if not ok and pool.refreshed_at is None:
            body["detail"] = "models are still loading"
        elif not loaded:
            body["detail"] = (
                f"no model holds the alias {state.config.alias!r} yet; promote one "
                f"with `ctloop models promote NAME VERSION`"
            )
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    def prometheus() -> Response:
        for name, d in state.pool.deployments.items():
            for s in (*d.routes, *([d.shadow] if d.shadow else [])):
                metrics.loaded.labels(name, s.route).set(s.version)
        return Response(metrics.render(), media_type=CONTENT_TYPE)


def _shadow(state: ServingState, deployment: Deployment, request: Any) -> None:
    shadow = deployment.shadow
    assert shadow is not None
    batch = score_shadow(shadow, request, state.feature_store)
    if batch is None:
        state.metrics.rows.labels(deployment.name, str(shadow.version), "shadow", "error").inc(
            len(request.request_ids)
        )
        return
    state.metrics.rows.labels(deployment.name, str(shadow.version), "shadow", "ok").inc(
        len(batch.request_ids)
    )
    if state.logger is not None:
        state.logger.submit([batch])


# --- errors -----------------------------------------------------------------------------------


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CtloopError)
    async def ctloop_error(_: Request, exc: CtloopError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return JSONResponse(InvalidRequest(detail).to_json(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 404:
            detail = (
                f"No route {request.method} {request.url.path}. Predict with POST "
                "/v1/models/NAME:predict; list models with GET /v1/models."
            )
        body = {"error": "http error", "detail": detail, "type": "HTTPException"}
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while serving a request")
        body = {
            "error": "internal error",
            "detail": f"{type(exc).__name__}: {exc}",
            "type": type(exc).__name__,
        }
        return JSONResponse(body, status_code=500)


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
