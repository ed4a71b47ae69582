"""A small HTTP/1.1 keep-alive load generator on raw asyncio sockets.

The same client drives every server in a benchmark and ``ctloop models
test``'s load phase, and it costs a few tens of microseconds per request, so
the server, not the client, is measured. Each of ``concurrency`` connections
sends one request, reads the whole answer (Content-Length or chunked), and
sends the next. A connection the server drops counts as an error and is
opened again, so a failing server gives an error rate, not a crash.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np

__all__ = ["Result", "load", "request_bytes"]


@dataclass(frozen=True)
class Result:
    """What a load run saw: requests answered, errors (non-200 or dropped), latency."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 1.0


def request_bytes(url: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """One POST of ``body`` to ``url`` as raw HTTP/1.1 bytes."""
    where = urlparse(url)
    lines = [f"POST {where.path} HTTP/1.1", f"Host: {where.netloc}",
             "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"content-length:")
    if at >= 0:
        end = lower.find(b"\r\n", at)
        await reader.readexactly(int(lower[at + 15:end]))
        return status
    while True:  # chunked
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        await reader.readexactly(size + 2)
        if size == 0:
            return status


_DROPPED = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


async def _connection(host: str, port: int, payload: bytes, deadline: float,
                      latencies: list[float], errors: list[int], limit: list[int],
                      timeout_s: float) -> None:
    opened: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    try:
        while time.perf_counter() < deadline and limit[0] > 0:
            if opened is None:
                try:
                    opened = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                    timeout_s)
                except (*_DROPPED, TimeoutError):
                    errors.append(0)
                    latencies.append(timeout_s)
                    await asyncio.sleep(0.01)
                    continue
            reader, writer = opened
            limit[0] -= 1
            started = time.perf_counter()
            try:
                writer.write(payload)
                status = await asyncio.wait_for(_read_response(reader), timeout_s)
            except (*_DROPPED, TimeoutError):
                status = 0  # dropped or timed out: an error, and a new connection
                writer.close()
                opened = None
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        if opened is not None:
            opened[1].close()


async def _run(url: str, payload: bytes, concurrency: int, seconds: float,
               max_requests: int, warmup_s: float, timeout_s: float) -> Result:
    where = urlparse(url)
    host, port = where.hostname or "127.0.0.1", where.port or 80
    latencies: list[float] = []
    errors: list[int] = []
    limit = [max_requests]
    if warmup_s > 0:  # warm up every connection, then measure
        await asyncio.gather(*(
            _connection(host, port, payload, time.perf_counter() + warmup_s, [], [], [50],
                        timeout_s) for _ in range(concurrency)))
    began = time.perf_counter()
    deadline = began + seconds
    await asyncio.gather(*(
        _connection(host, port, payload, deadline, latencies, errors, limit, timeout_s)
        for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    if not latencies:
        return Result(0, len(errors), elapsed, float("nan"), float("nan"))
    ms = np.array(latencies) * 1000
    return Result(len(latencies), len(errors), elapsed, float(np.percentile(ms, 50)),
                  float(np.percentile(ms, 99)))


def load(url: str, body: bytes, *, concurrency: int = 1, seconds: float = 5.0,
         max_requests: int = 10**9, headers: dict[str, str] | None = None,
         warmup_s: float = 0.3, timeout_s: float = 30.0) -> Result:
    """Send ``body`` to ``url`` from ``concurrency`` connections for ``seconds``."""
    payload = request_bytes(url, body, headers)
    return asyncio.run(_run(url, payload, concurrency, seconds, max_requests, warmup_s,
                            timeout_s))
