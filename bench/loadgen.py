"""A small HTTP/1.1 keep-alive load generator on raw asyncio sockets.

The same client drives every server in a benchmark, and it costs a few tens
of microseconds per request, so the servers, not the client, are measured.
Each of ``concurrency`` connections sends one request, reads the whole
answer (Content-Length or chunked), and sends the next.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np


@dataclass(frozen=True)
class Result:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def request_bytes(url: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
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


async def _connection(host: str, port: int, payload: bytes, deadline: float,
                      latencies: list[float], errors: list[int], limit: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline and limit[0] > 0:
            limit[0] -= 1
            started = time.perf_counter()
            writer.write(payload)
            status = await _read_response(reader)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def _run(url: str, payload: bytes, concurrency: int, seconds: float,
               max_requests: int) -> Result:
    where = urlparse(url)
    latencies: list[float] = []
    errors: list[int] = []
    limit = [max_requests]
    # warm up every connection, then measure
    await asyncio.gather(*(
        _connection(where.hostname or "127.0.0.1", where.port or 80, payload,
                    time.perf_counter() + 0.3, [], [], [50]) for _ in range(concurrency)))
    began = time.perf_counter()
    deadline = began + seconds
    # bounded: a server that stops answering fails the run instead of hanging it
    await asyncio.wait_for(asyncio.gather(*(
        _connection(where.hostname or "127.0.0.1", where.port or 80, payload, deadline,
                    latencies, errors, limit) for _ in range(concurrency))), seconds + 60)
    elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return Result(len(latencies), len(errors), elapsed, float(np.percentile(ms, 50)),
                  float(np.percentile(ms, 99)))


def load(url: str, body: bytes, *, concurrency: int = 1, seconds: float = 5.0,
         max_requests: int = 10**9, headers: dict[str, str] | None = None) -> Result:
    """Send ``body`` to ``url`` from ``concurrency`` connections for ``seconds``."""
    payload = request_bytes(url, body, headers)
    return asyncio.run(_run(url, payload, concurrency, seconds, max_requests))
