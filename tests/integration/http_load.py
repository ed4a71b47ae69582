"""A cheap HTTP load generator for the serving tests: raw HTTP/1.1 over asyncio streams."""

from __future__ import annotations

import asyncio
import json
import re
import time

ROWS = [{"origin": "JFK", "hour": 8}]


async def load(base: str, ids: list[str], acked: dict[str, float], *, concurrency: int,
                stop: asyncio.Event | None = None,
                refused: dict[str, bytes] | None = None) -> None:
    """One single-row request per id over ``concurrency`` keep-alive connections.

    A raw HTTP/1.1 client (asyncio streams) so the load generator costs less CPU
    than the server it loads; notes when each 200 answer arrived (and, given
    ``refused``, the status line and body of every other answer).
    """
    host, port = base.removeprefix("http://").split(":")
    queue = list(reversed(ids))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while queue and not (stop and stop.is_set()):
                rid = queue.pop()
                body = json.dumps({"rows": ROWS, "request_ids": [rid]}).encode()
                writer.write(
                    b"POST /v1/models/flights:predict HTTP/1.1\r\nHost: t\r\n"
                    b"Content-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]  # a server that answers has one
                body = await reader.readexactly(length)
                if head.startswith(b"HTTP/1.1 200"):
                    acked[rid] = time.monotonic()
                elif refused is not None:
                    refused[rid] = head.split(b"\r\n")[0] + b" " + body
        except (ConnectionError, asyncio.IncompleteReadError):
            return  # the server was killed
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
