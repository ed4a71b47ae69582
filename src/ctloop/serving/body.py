"""Reading request bodies within limits: size while streaming, JSON nesting depth.

The size limit is enforced on the declared ``Content-Length`` first and then
on the bytes actually received, chunk by chunk, so a 100 MB upload is cut off
after the limit, never buffered whole. JSON is decoded by orjson; bodies with
more brackets than the depth limit get their depth measured (vectorised, with
brackets inside strings ignored) before decoding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from starlette.requests import ClientDisconnect, Request

from ctloop.serving.errors import InvalidRequest, TooDeep, TooLarge

__all__ = ["json_depth", "loads", "read_body"]

_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or ``TooLarge`` as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(_too_large(int(declared), limit))
    chunks: list[bytes] = []
    size = 0
    receive = request.receive  # the ASGI messages themselves: Request.stream() is an async
    while True:  # generator around this same loop, one more frame per chunk
        message = await receive()
        kind = message["type"]
        if kind == "http.disconnect":
            raise ClientDisconnect()
        if kind != "http.request":
            continue
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise TooLarge(_too_large(size, limit, partial=True))
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(size: int, limit: int, *, partial: bool = False) -> str:
    got = f"more than {limit:,}" if partial else f"{size:,}"
    return (
        f"The request body has {got} bytes; the limit is {limit:,} "
        "(max_body_bytes in [ctloop.serving]). Send fewer rows per request."
    )


def json_depth(raw: bytes) -> int:
    """How deeply the JSON in ``raw`` nests arrays and objects (strings ignored)."""
    data = np.frombuffer(raw, dtype=np.uint8)
    quotes = data == ord('"')
    if b"\\" in raw:  # a quote after an odd run of backslashes is escaped
        slashes = np.flatnonzero(data == ord("\\"))
        last = np.r_[np.diff(slashes) != 1, True]  # the last backslash of each run
        first = np.r_[True, np.diff(slashes) != 1]
        lengths = slashes[last] - slashes[first] + 1
        after = slashes[last] + 1
        keep = after < len(data)
        escaped = after[keep][lengths[keep] % 2 == 1]
        quotes[escaped] = False
    inside = (np.cumsum(quotes) - quotes) % 2 == 1
    steps = _OPEN[data].astype(np.int32)
    steps[inside | quotes] = 0
    return int(np.cumsum(steps).max(initial=0))


def loads(raw: bytes, max_depth: int) -> Any:
    """Decoded JSON; ``TooDeep`` past ``max_depth``, ``InvalidRequest`` when not JSON."""
    if raw.count(b"[") + raw.count(b"{") > max_depth:
        depth = json_depth(raw)
        if depth > max_depth:
            raise TooDeep(
                f"The request body nests JSON {depth} levels deep; the limit is {max_depth} "
                "(max_json_depth in [ctloop.serving])."
            )
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise TooDeep(f"The request body nests JSON too deeply: {exc}.") from None
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from None
