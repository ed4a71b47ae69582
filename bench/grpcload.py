"""A gRPC load generator for the Open Inference Protocol's ModelInfer, beside ``loadgen``.

One ``grpc.aio`` channel (one HTTP/2 connection, as gRPC clients use) carries
``concurrency`` calls at a time; the request is serialized once and sent as
bytes, and answers are not parsed, so, as with ``loadgen``, the server is
what is measured, not the client's message handling.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import grpc.aio
import numpy as np
from loadgen import Result

METHOD = "/inference.GRPCInferenceService/ModelInfer"


async def _caller(call: grpc.aio.UnaryUnaryMultiCallable, payload: bytes, deadline: float,
                  latencies: list[float], errors: list[str], limit: list[int]) -> None:
    while time.perf_counter() < deadline and limit[0] > 0:
        limit[0] -= 1
        started = time.perf_counter()
        try:
            await call(payload)
        except grpc.aio.AioRpcError as exc:
            errors.append(exc.code().name)
        latencies.append(time.perf_counter() - started)


async def _run(target: str, payload: bytes, concurrency: int, seconds: float,
               max_requests: int) -> Result:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(METHOD)  # bytes in, bytes out
        await asyncio.gather(*(_caller(call, payload, time.perf_counter() + 0.3, [], [], [50])
                               for _ in range(concurrency)))  # warm up
        latencies: list[float] = []
        errors: list[str] = []
        limit = [max_requests]
        began = time.perf_counter()
        deadline = began + seconds
        await asyncio.gather(*(_caller(call, payload, deadline, latencies, errors, limit)
                               for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return Result(len(latencies), len(errors), elapsed, float(np.percentile(ms, 50)),
                  float(np.percentile(ms, 99)))


def load(target: str, request: bytes, *, concurrency: int = 1, seconds: float = 5.0,
         max_requests: int = 10**9) -> Result:
    """Send the serialized ModelInferRequest ``request`` to ``target`` (host:port)."""
    return asyncio.run(_run(target, request, concurrency, seconds, max_requests))
