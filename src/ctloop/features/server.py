"""The feature server: online features over HTTP.

``feature_router(store)`` is a FastAPI ``APIRouter`` the prediction service
mounts; ``create_app(store)`` wraps it in a standalone app. Errors meant for a
person answer 4xx/5xx with ``{"error", "detail", "type"}``.

    POST /features/online  {"features": ["weather:temp"], "entities": {"origin": ["JFK"]},
                            "now": "2013-06-01T12:00:00"}   (entities may be a list of rows)
    GET  /features         the views and their features
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ctloop.core.errors import CtloopError, UserInputError
from ctloop.features.store import FeatureStore

__all__ = ["OnlineRequest", "create_app", "feature_router"]


class OnlineRequest(BaseModel):
    features: list[str] = Field(min_length=1)
    entities: dict[str, list[Any]] | list[dict[str, Any]]
    now: str | None = None


def _error(exc: CtloopError) -> JSONResponse:
    return JSONResponse(exc.to_json(), status_code=exc.http_status)


def feature_router(
    store: FeatureStore | Callable[[], FeatureStore], *, prefix: str = "/features"
) -> APIRouter:
    """Routes serving ``store`` (or the store a callable returns, resolved per request)."""
    router = APIRouter(prefix=prefix, tags=["features"])

    def get_store() -> FeatureStore:
        return store if isinstance(store, FeatureStore) else store()

    @router.post("/online")
    def online(body: OnlineRequest) -> Any:
        try:
            return (
                get_store()
                .get_online_features(body.features, body.entities, now=body.now)
                .to_dict()
            )
        except CtloopError as exc:
            return _error(exc)

    @router.get("")
    def listing() -> Any:
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
    app.include_router(feature_router(store))

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

    return app
