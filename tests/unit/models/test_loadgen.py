"""The load generator counts non-200 answers and dropped connections as errors, never crashes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ctloop.models.loadgen import load


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).count += 1
        if self.server.mode == "drop" and type(self).count % 3 == 0:  # type: ignore[attr-defined]
            self.close_connection = True
            self.wfile.flush()
            self.connection.close()
            return
        status = 500 if self.server.mode == "fail" else 200  # type: ignore[attr-defined]
        body = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _server(mode: str) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.mode = mode  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/models/m:predict"
    finally:
        server.shutdown()
        server.server_close()


def test_a_healthy_server_has_no_errors() -> None:
    with _server("ok") as url:
        result = load(url, b"{}", concurrency=2, seconds=0.3, warmup_s=0, max_requests=200)
    assert result.requests > 0 and result.errors == 0 and result.error_rate == 0
    assert result.p50_ms <= result.p99_ms


def test_failures_and_drops_are_errors() -> None:
    with _server("fail") as url:
        failing = load(url, b"{}", concurrency=2, seconds=0.3, warmup_s=0, max_requests=100)
    assert failing.requests > 0 and failing.error_rate == 1.0
    with _server("drop") as url:
        dropping = load(url, b"{}", concurrency=2, seconds=0.3, warmup_s=0, max_requests=60,
                        timeout_s=5)
    assert dropping.requests > 0 and 0 < dropping.errors < dropping.requests
