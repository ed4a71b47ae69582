"""The predict routes called straight from ASGI, past FastAPI's routing and dependency layers.

A one-row prediction is a few microseconds of model work; FastAPI spends more
than that per request matching the path against every route, solving the
endpoint's dependencies (``name: str, request: Request``), wrapping it in an
exit stack and in its exception and telemetry middlewares. The predict routes
need none of it: :class:`DirectPredict` matches their paths itself and awaits
the very endpoint functions FastAPI registered (so protocol handling, the data
plane, the request log and the metrics are the same code), and answers an
exception with the app's own handler for it. The routes stay registered, so
the OpenAPI document still declares them; everything else, and any request
this class does not match, goes down the normal stack.

It is the app's front door (:class:`DirectApp`): a predict POST goes to the
API-key guard and then here without entering FastAPI's own stack at all
(FastAPI's ``__call__`` checks its telemetry providers, three environment
reads, and wraps every send in its error and telemetry middlewares on every
request); any other request goes down that stack, the key guard inside it, as
before. The front door matches the path once and hands the match on in the
scope (``MATCHED``), so the guard's ``DirectPredict`` does not match it again.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["MATCHED", "PREDICT_PATHS", "DirectApp", "DirectPredict"]

MATCHED = "ctloop.direct"  # scope key: the (endpoint, path params) the front door matched

PREDICT_PATHS = (
    "/v1/models/{name}:predict",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
)

Endpoint = Callable[..., Awaitable[Any]]


class DirectPredict:
    """ASGI middleware: POSTs to the predict paths go straight to their endpoints."""

    def __init__(self, app: ASGIApp, *, fastapi: FastAPI) -> None:
        self.app = app
        self.fastapi = fastapi
        self.routes: list[tuple[re.Pattern[str], Endpoint]] = []
        for route in fastapi.routes:
            if isinstance(route, APIRoute) and route.path in PREDICT_PATHS:
                self.routes.append((route.path_regex, route.endpoint))

    def match(self, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        """The endpoint and path parameters of a POST to ``path``, if a predict route."""
        for regex, endpoint in self.routes:
            found = regex.match(path)
            if found is not None:
                return endpoint, found.groupdict()
        return None

    def matches(self, path: str) -> bool:
        """Whether a POST to ``path`` is a predict route this class answers."""
        return self.match(path) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            matched = scope.pop(MATCHED, None) or self.match(scope["path"])
            if matched is not None:
                await self._call(matched[0], matched[1], scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _call(self, endpoint: Endpoint, params: dict[str, str], scope: Scope,
                    receive: Receive, send: Send) -> None:
        scope["app"] = self.fastapi
        request = Request(scope, receive)
        try:
            response = await endpoint(request=request, **params)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # ServerErrorMiddleware answers 500, as for any route
            response = handler(request, exc)
            if isinstance(response, Awaitable):
                response = await response
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Callable[[Request, Exception], Any] | None:
        handlers = self.fastapi.exception_handlers
        for kind in type(exc).__mro__:
            if kind in handlers:
                return handlers[kind]
        return None


class DirectApp(FastAPI):
    """The serving app: FastAPI, with predict POSTs answered before its own stack.

    ``front`` is ``DirectPredict`` wrapped in the API-key guard when keys are on; it is
    set by ``serving.app.create_app`` once every route is registered.
    """

    front: ASGIApp | None = None
    direct: DirectPredict | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self.direct
        if (direct is not None and self.front is not None and scope["type"] == "http"
                and scope["method"] == "POST"):
            matched = direct.match(scope["path"])
            if matched is not None:
                scope[MATCHED] = matched
                await self.front(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def set_front(self, guard: Callable[[ASGIApp], ASGIApp] | None) -> None:
        """Answer the predict routes directly, behind ``guard`` (the key check) if any."""
        direct = DirectPredict(super().__call__, fastapi=self)
        self.direct = direct
        self.front = direct if guard is None else guard(direct)
