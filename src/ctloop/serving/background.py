"""Run the prediction service in a background thread of this process.

For replays, notebooks and tests that want the real HTTP service (uvicorn on
loopback, lifespan, hot reload, request log) without managing a process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ctloop.core.errors import StoreError
from ctloop.core.net import free_port

__all__ = ["background_server"]



@contextmanager
def background_server(app: Any, *, host: str = "127.0.0.1", port: int | None = None,
                      timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn until the block ends; yields its base URL."""
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="ctloop-serving", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise StoreError(f"The prediction service did not start on {host}:{port}.")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
