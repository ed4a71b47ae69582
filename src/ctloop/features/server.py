"""The feature server: online features over HTTP.

``feature_router(store)`` is a FastAPI ``APIRouter`` the prediction service
mounts; ``create_app(store)`` wraps it in a standalone app. Errors meant for a
person answer 4xx/5xx with ``{"error", "detail", "type"}``.

    POST /features/online  {"features": ["weather:temp"], "entities": {"origin": ["JFK"]},
                            "now": "2013-06-01T12:00:00"}   (entities may be a list of rows)
    GET  /features         the views and their features
    GET  /metrics          Prometheus: requests, latency and looked-up values by status
                           (standalone app; mounted in the prediction service, its
                           /metrics includes these)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field

from ctloop.core.errors import CtloopError, UserInputError
from ctloop.core.jsontypes import JSONScalar, JSONValue
from ctloop.features.store import FeatureStore

__all__ = ["FeatureMetrics", "OnlineRequest", "create_app", "feature_router"]

_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class FeatureMetrics:
    """Counters of the feature server; labels are a fixed set (no view or entity names)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ctloop_feature_requests", "Feature server requests by endpoint and HTTP status.",
            ["endpoint", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "ctloop_feature_request_latency_seconds", "Feature server latency by endpoint.",
            ["endpoint"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        self.values = Counter(
            "ctloop_feature_values", "Online values served, by status (present, missing, "
            "expired).", ["status"], registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class OnlineRequest(BaseModel):
    features: list[str] = Field(min_length=1)
    entities: dict[str, list[JSONScalar]] | list[dict[str, JSONScalar]]
    now: str | None = None


def _error(exc: CtloopError) -> JSONResponse:
    return JSONResponse(exc.to_json(), status_code=exc.http_status)


def feature_router(
    store: FeatureStore | Callable[[], FeatureStore],
    *,
    prefix: str = "/features",
    metrics: FeatureMetrics | None = None,
) -> APIRouter:
    """Routes serving ``store`` (or the store a callable returns, resolved per request).

    ``metrics`` counts requests, latency and served values (default: counted
    in a registry of their own).
    """
    router = APIRouter(prefix=prefix, tags=["features"])
    counted = metrics or FeatureMetrics()

    def get_store() -> FeatureStore:
        return store if isinstance(store, FeatureStore) else store()

    @router.post("/online", response_model=None)
    def online(body: OnlineRequest) -> dict[str, object] | JSONResponse:
        started = time.perf_counter()
        status = "500"
        try:
            found = get_store().get_online_features(body.features, body.entities, now=body.now)
            for statuses in found.statuses.values():
                for name in ("present", "missing", "expired"):
                    hits = statuses.count(name)
                    if hits:
                        counted.values.labels(name).inc(hits)
            status = "200"
            return found.to_dict()
        except CtloopError as exc:
            status = str(exc.http_status)
            return _error(exc)
        finally:
            counted.requests.labels("online", status).inc()
            counted.latency.labels("online").observe(time.perf_counter() - started)

    @router.get("", response_model=None)
    def listing() -> dict[str, JSONValue]:
        counted.requests.labels("listing", "200").inc()
        fs = get_store()
        return {
            "views": [
                {
                    "name": v.name,
                    "join_keys": list(v.join_keys),
                    "features": v.feature_names,
                    "ttl_s": None if v.ttl is None else v.ttl.total_seconds(),
                }
                for v in fs.views.values()
            ]
        }

    return router


def create_app(store: FeatureStore | Callable[[], FeatureStore]) -> FastAPI:
    """A standalone feature server."""
    app = FastAPI(title="ctloop feature server")
    metrics = FeatureMetrics()
    app.include_router(feature_router(store, metrics=metrics))

    @app.exception_handler(CtloopError)
    async def ctloop_error(_: Request, exc: CtloopError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # One line in the usual {"error", "detail", "type"} shape, like the prediction service.
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        message = (
            f"Invalid request: {detail}. Send JSON like "
            '{"features": ["weather:temp"], "entities": {"origin": ["JFK"]}}.'
        )
        return JSONResponse(UserInputError(message).to_json(), status_code=422)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=_CONTENT_TYPE)

    return app
