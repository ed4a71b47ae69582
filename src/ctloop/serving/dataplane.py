"""The data plane: what a prediction request goes through, for every protocol.

A route reads the body, a protocol adapter (``serving.protocols``) decodes it to
``Inputs``; :func:`run_prediction` scores it (``serving.scoring``), answers with the
adapter's encoding, logs and counts. The service state, JSON answers and readiness
live here too, so the route modules (``serving.routes``) and ``serving.app`` import
them from one place below them, not from each other.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import orjson
from fastapi import Request
from fastapi.responses import Response

from ctloop.core.errors import CtloopError, NotFound
from ctloop.requestlog.entries import Entry
from ctloop.requestlog.records import PredictionLog, RequestProtocol
from ctloop.requestlog.writer import LogWriter
from ctloop.serving.body import read_body
from ctloop.serving.config import ServingConfig
from ctloop.serving.errors import NotReady
from ctloop.serving.inputs import Inputs, new_request_id
from ctloop.serving.metrics import UNKNOWN, ServingMetrics
from ctloop.serving.pool import Deployment, ModelPool
from ctloop.serving.scoring.predict import Scored, Scorer, logical_time, shadow_entry

if TYPE_CHECKING:
    from ctloop.features import FeatureStore

__all__ = ["DeniedSample", "Respond", "ServingState", "json_response", "log_denied",
           "readiness", "run_prediction", "serve_prediction"]

log = logging.getLogger("ctloop.serving")

_JSON = orjson.OPT_SERIALIZE_NUMPY


def json_response(content: Any, status_code: int = 200, **kwargs: Any) -> Response:
    """orjson-encoded JSON (NumPy arrays included)."""
    return Response(orjson.dumps(content, option=_JSON), status_code=status_code,
                    media_type="application/json", **kwargs)


class DeniedSample:
    """At most ``per_minute`` refused-for-their-key requests are written to the request log
    each minute: anyone can send them, so they must not be able to grow the log."""

    def __init__(self, per_minute: int = 60) -> None:
        self.per_minute = per_minute
        self.window = -1
        self.taken = 0

    def take(self, now: float) -> bool:
        window = int(now // 60)
        if window != self.window:
            self.window, self.taken = window, 0
        self.taken += 1
        return self.taken <= self.per_minute



@dataclass
class ServingState:
    """Everything a running app holds; ``app.state.serving``."""

    config: ServingConfig
    pool: ModelPool
    metrics: ServingMetrics
    feature_store: FeatureStore | None
    logger: LogWriter | None
    prediction_log: PredictionLog | None
    scorer: Scorer
    closers: list[Any]
    denied_sample: DeniedSample = field(default_factory=DeniedSample)  # HTTP and gRPC

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

    def log_failure(self, name: str, protocol: str, exc: Exception, started: float,
                    request_id: str) -> int:
        """Log a request that raised ``exc``; returns its status (a CtloopError's own, else
        500)."""
        if isinstance(exc, CtloopError):
            status, error = exc.http_status, exc.one_line()
        else:
            status, error = 500, f"{type(exc).__name__}: {exc}"
        self.log_rejected(name, protocol, status, error, started, request_id)
        return status

    def close(self) -> None:
        self.pool.stop()
        self.scorer.close()
        if self.logger is not None:
            self.logger.close()
        for close in self.closers:
            with suppress(Exception):
                close()


Respond = Callable[[Scored], Response]
B = TypeVar("B")
R = TypeVar("R")


async def serve_prediction(
    state: ServingState,
    request: Request,
    name: str,
    *,
    protocol: RequestProtocol,
    endpoint: str,
    parse: Callable[[bytes, Request, Deployment], Awaitable[tuple[Inputs, Respond]]],
    pin: Callable[[Deployment], Deployment] | None = None,
) -> Response:
    """An HTTP prediction request through :func:`run_prediction`: the body, then ``parse``."""

    async def read() -> bytes:
        return await read_body(request, state.config.max_body_bytes)

    async def prepare(raw: bytes, deployment: Deployment) -> tuple[Inputs, Respond]:
        return await parse(raw, request, deployment)

    return await run_prediction(
        state, name, protocol=protocol, endpoint=endpoint,
        request_id=request.headers.get("x-request-id"), read=read, parse=prepare, pin=pin,
        status_of=lambda response: response.status_code,
    )


async def run_prediction(
    state: ServingState,
    name: str,
    *,
    protocol: RequestProtocol,
    endpoint: str,
    request_id: str | None,
    read: Callable[[], Awaitable[B]],
    parse: Callable[[B, Deployment], Awaitable[tuple[Inputs, Callable[[Scored], R]]]],
    status_of: Callable[[R], int],
    pin: Callable[[Deployment], Deployment] | None = None,
) -> R:
    """The shared life of a prediction request: read, parse, score, answer, log, count.

    One path for every protocol (HTTP v1 and v2, gRPC v2), so routing, micro-batching,
    the request log and the metrics cannot differ between them; ``R`` is the
    protocol's answer and ``status_of`` its HTTP-equivalent status.
    """
    started = time.perf_counter()
    metrics = state.metrics
    status = 500
    scored: Scored | None = None
    try:
        raw = await read()
        deployment = state.deployment(name)
        if pin is not None:
            deployment = pin(deployment)
        inputs, respond = await parse(raw, deployment)
        if inputs.rows == 1 and request_id is None:
            request_id = inputs.request_ids[0]
        scored = await state.scorer.score(deployment, inputs)
        response = respond(scored)
        status = status_of(response)
        latency_ms = (time.perf_counter() - started) * 1000
        if state.logger is not None:
            state.logger.submit(scored.log_entries(latency_ms, logical_time(inputs.now)))
        for part in scored.parts:
            served = part.served
            metrics.count_rows(name, served.version, served.route, "ok", part.answer.rows)
        if deployment.shadow is not None:
            await _shadow(state, deployment, inputs, started)
        return response
    except Exception as exc:
        status = state.log_failure(name, protocol, exc, started, request_id or new_request_id())
        raise
    finally:
        label = state.label(name)
        metrics.count_request(label, endpoint, protocol, status)
        elapsed = time.perf_counter() - started
        if scored is not None:
            for part in scored.parts:
                metrics.observe_latency(label, str(part.served.version), part.served.route,
                                        endpoint, elapsed)
        else:
            metrics.observe_latency(label, "none", "none", endpoint, elapsed)


async def _shadow(state: ServingState, deployment: Deployment, inputs: Inputs,
                  started: float) -> None:
    shadow = deployment.shadow
    assert shadow is not None
    part = await state.scorer.shadow(shadow, inputs, started)
    status = "error" if part is None else "ok"
    state.metrics.count_rows(deployment.name, shadow.version, "shadow", status, inputs.rows)
    if part is not None and state.logger is not None:
        latency_ms = (time.perf_counter() - started) * 1000
        state.logger.submit([shadow_entry(part, inputs, latency_ms, logical_time(inputs.now))])


_PREDICT_PATH = re.compile(
    r"^/(?P<protocol>v1|v2)/models/(?P<name>[^/:]+)(?::predict|(?:/versions/[^/]+)?/infer)$"
)


def log_denied(state: ServingState, path: str, status: int, error: str) -> None:
    """A request refused for its API key is counted in ``/metrics`` (every one); a refused
    prediction is also written to the request log, a bounded sample of them."""
    state.metrics.denied.labels(str(status)).inc()
    found = _PREDICT_PATH.match(path)
    if found is not None and state.denied_sample.take(time.monotonic()):
        state.log_rejected(found["name"], found["protocol"], status, error,
                           time.perf_counter(), new_request_id())


def readiness(state: ServingState) -> tuple[bool, dict[str, Any]]:
    """Whether every served model has a version loaded, and what is loaded."""
    pool = state.pool
    loaded = {n: {s.route: s.version for s in d.routes} for n, d in pool.deployments.items()}
    wanted = set(state.config.models) | set(pool.errors) | set(loaded)
    missing = sorted(wanted - set(loaded))
    ok = pool.refreshed_at is not None and bool(loaded) and not missing
    out: dict[str, Any] = {"ready": ok, "loaded": loaded, "missing": missing,
                           "errors": pool.errors}
    unknown = [pool.errors[n]["*"] for n in missing if "*" in (pool.errors.get(n) or {})]
    if not ok and pool.refreshed_at is None:
        out["detail"] = "models are still loading"
    elif unknown:  # a typo in the name asked for: say so, not "promote one"
        out["detail"] = "; ".join(unknown)
    elif not loaded:
        out["detail"] = (
            f"no model holds the alias {state.config.alias!r} yet; promote one "
            f"with `ctloop models promote NAME VERSION`"
        )
    return ok, out


# --- errors -----------------------------------------------------------------------------------
