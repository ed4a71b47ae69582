"""Run the prediction service in a background thread of this process.

For replays, notebooks and tests that want the real HTTP service (uvicorn on
loopback, lifespan, hot reload, request log) without managing a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from ctloop.core.errors import StoreError
from ctloop.core.net import free_port

if TYPE_CHECKING:
    import socket

    import uvicorn

__all__ = ["background_server"]


class _Served(Protocol):
    started: bool

    def run(self, sockets: list[socket.socket] | None = None) -> None: ...

    def stop(self) -> None: ...


@functools.cache
def _prompt_server() -> Callable[[uvicorn.Config], _Served]:
    """uvicorn's Server, stopping as soon as asked: uvicorn looks at ``should_exit`` every
    0.1 s, which a replay paid once per span for nothing."""
    import uvicorn

    class PromptServer(uvicorn.Server):
        _wake: asyncio.Event | None = None
        _loop: asyncio.AbstractEventLoop | None = None

        async def main_loop(self) -> None:
            self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
            counter = 0
            should_exit = await self.on_tick(counter)
            while not should_exit:
                counter = (counter + 1) % 864000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.1)
                should_exit = await self.on_tick(counter)

        def stop(self) -> None:
            self.should_exit = True
            loop, wake = self._loop, self._wake
            if loop is not None and wake is not None:
                with contextlib.suppress(RuntimeError):  # the loop has already closed
                    loop.call_soon_threadsafe(wake.set)

    return PromptServer


@contextmanager
def background_server(app: Any, *, host: str = "127.0.0.1", port: int | None = None,
                      timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn until the block ends; yields its base URL."""
    import uvicorn

    port = port or free_port(host)
    server = _prompt_server()(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                             lifespan="on"))
    thread = threading.Thread(target=server.run, name="ctloop-serving", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.stop()
            raise StoreError(f"The prediction service did not start on {host}:{port}.")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        thread.join(timeout=timeout)
