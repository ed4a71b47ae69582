"""The benches' load generator: the package's (:mod:`ctloop.models.loadgen`), with a
blocking-socket client for one connection.

At concurrency 1 requests per second are 1 / (server time + client time), so the
client's own cost dilutes every ratio between servers. The package's asyncio client
spends ~100-200 us of Python per request (a task per ``wait_for``, stream reader
buffers, the event loop's wake-ups); a plain socket loop spends about 50. The
same client drives every server in a run, so either is fair. The socket client is
opt-in (``CTLOOP_BENCH_CLIENT=socket``): at 100 rows per request it sends more rows
per second than the request log's writer keeps, and ctloop answers part of them 503
by design (the log's back-pressure), which the benches count as failures.
Concurrency above 1 always uses the package's client.
"""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlparse

import numpy as np

from ctloop.models.loadgen import Result, request_bytes
from ctloop.models.loadgen import load as _async_load

__all__ = ["Result", "load", "request_bytes"]


def load(url: str, body: bytes, *, concurrency: int = 1, seconds: float = 5.0,
         max_requests: int = 10**9, headers: dict[str, str] | None = None,
         warmup_s: float = 0.3, timeout_s: float = 30.0) -> Result:
    """Send ``body`` to ``url`` from ``concurrency`` connections for ``seconds``."""
    if concurrency != 1 or os.environ.get("CTLOOP_BENCH_CLIENT") != "socket":
        return _async_load(url, body, concurrency=concurrency, seconds=seconds,
                           max_requests=max_requests, headers=headers, warmup_s=warmup_s,
                           timeout_s=timeout_s)
    payload = request_bytes(url, body, headers)
    where = urlparse(url)
    address = (where.hostname or "127.0.0.1", where.port or 80)
    client = _Client(address, payload, timeout_s)
    try:
        end = time.perf_counter() + warmup_s
        while time.perf_counter() < end:
            client.one()
        latencies: list[float] = []
        errors = 0
        began = time.perf_counter()
        deadline = began + seconds
        while len(latencies) < max_requests and time.perf_counter() < deadline:
            started = time.perf_counter()
            status = client.one()
            latencies.append(time.perf_counter() - started)
            errors += status != 200
        elapsed = time.perf_counter() - began
    finally:
        client.close()
    if not latencies:
        return Result(0, errors, elapsed, float("nan"), float("nan"))
    ms = np.array(latencies) * 1000
    return Result(len(latencies), errors, elapsed, float(np.percentile(ms, 50)),
                  float(np.percentile(ms, 99)))


class _Client:
    """One keep-alive connection; a dropped one counts as an error and is opened again."""

    def __init__(self, address: tuple[str, int], payload: bytes, timeout_s: float) -> None:
        self.address, self.payload, self.timeout_s = address, payload, timeout_s
        self.sock: socket.socket | None = None
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def one(self) -> int:
        """One request and its whole answer; its status (0: dropped or timed out)."""
        try:
            if self.sock is None:
                self.sock = socket.create_connection(self.address, timeout=self.timeout_s)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.buffer = b""
            self.sock.sendall(self.payload)
            return self._response(self.sock)
        except (OSError, ValueError):
            self.close()
            return 0

    def _response(self, sock: socket.socket) -> int:
        data = self.buffer
        while (end := data.find(b"\r\n\r\n")) < 0:
            data += self._recv(sock)
        head, data = data[:end], data[end + 4:]
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"content-length:")
        if at >= 0:
            stop = lower.find(b"\r\n", at)
            size = int(lower[at + 15:stop if stop >= 0 else None])
            while len(data) < size:
                data += self._recv(sock)
            self.buffer = data[size:]
            return status
        while True:  # chunked
            while (line := data.find(b"\r\n")) < 0:
                data += self._recv(sock)
            size = int(data[:line].strip(), 16)
            data = data[line + 2:]
            while len(data) < size + 2:
                data += self._recv(sock)
            data = data[size + 2:]
            if size == 0:
                self.buffer = data
                return status

    @staticmethod
    def _recv(sock: socket.socket) -> bytes:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        return chunk
