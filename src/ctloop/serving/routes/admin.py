"""Admin routes: promote a version and roll an alias back, over HTTP.

    POST /admin/models/{name}/promote   {"version": 3, "alias": "champion", "reason": "..."}
    POST /admin/models/{name}/rollback  {"alias": "champion", "reason": "..."}
    GET  /admin/models/{name}/history   alias moves, oldest first

They need API keys with the ``admin`` role (without keys configured they
answer 403: an open server must not let anyone move the champion). Every move
is recorded in the registry history with the key's name as the actor; the
service then reloads at once instead of waiting for its next poll.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ctloop.registry import ModelRegistry
from ctloop.serving.body import loads, read_body
from ctloop.serving.errors import Forbidden, InvalidRequest
from ctloop.serving.openapi import ADMIN_PROMOTE, ADMIN_ROLLBACK, body

if TYPE_CHECKING:
    from ctloop.serving.dataplane import ServingState

__all__ = ["add_routes"]


def _actor(request: Request, keys_enabled: bool) -> str:
    name = getattr(request.state, "api_key", None)
    if not keys_enabled or name is None:
        raise Forbidden(
            "Admin routes need API keys: add a key with the admin role to "
            "[ctloop.serving.keys] (or CTLOOP_SERVING_KEYS) and send it."
        )
    return f"api-key:{name}"


def _text(payload: dict[str, Any], key: str, default: str) -> str:
    value = payload.get(key, default)
    if not isinstance(value, str) or (key == "alias" and not value):
        raise InvalidRequest(f"'{key}' must be a non-empty string.")
    return value


async def _payload(request: Request, state: ServingState, allowed: set[str]) -> dict[str, Any]:
    raw = await read_body(request, state.config.max_body_bytes)
    payload = loads(raw, state.config.max_json_depth) if raw else {}
    if not isinstance(payload, dict) or not set(payload) <= allowed:
        raise InvalidRequest(f"The body must be an object with keys among {sorted(allowed)}.")
    return payload


def add_routes(app: FastAPI, state: ServingState, *, keys_enabled: bool) -> None:
    from ctloop.serving.dataplane import json_response

    def registry(actor: str) -> ModelRegistry:
        return ModelRegistry(state.pool.registry.store, actor=actor)

    def event(record: Any) -> dict[str, Any]:
        out = asdict(record)
        if out.get("created_at") is not None:
            out["created_at"] = out["created_at"].isoformat()
        return out

    @app.post("/admin/models/{name}/promote", openapi_extra=body(ADMIN_PROMOTE))
    async def promote(name: str, request: Request) -> Response:
        actor = _actor(request, keys_enabled)
        payload = await _payload(request, state, {"version", "alias", "reason"})
        version = payload.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidRequest("'version' must be a positive integer.")
        alias = _text(payload, "alias", state.config.alias)
        reason = _text(payload, "reason", "promoted over HTTP")
        moved = await run_in_threadpool(
            registry(actor).promote, name, version, alias=alias, reason=reason
        )
        await run_in_threadpool(state.pool.refresh)
        return json_response(event(moved))

    @app.post("/admin/models/{name}/rollback", openapi_extra=body(ADMIN_ROLLBACK, required=False))
    async def rollback(name: str, request: Request) -> Response:
        actor = _actor(request, keys_enabled)
        payload = await _payload(request, state, {"alias", "reason"})
        alias = _text(payload, "alias", state.config.alias)
        reason = _text(payload, "reason", "")
        moved = await run_in_threadpool(registry(actor).rollback, name, alias=alias,
                                        reason=reason)
        await run_in_threadpool(state.pool.refresh)
        return json_response(event(moved))

    @app.get("/admin/models/{name}/history")
    async def history(name: str, request: Request) -> Response:
        _actor(request, keys_enabled)
        events = await run_in_threadpool(registry("read").history, name)
        return json_response({"model": name, "events": [event(e) for e in events]})
