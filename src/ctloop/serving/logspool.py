"""Old home of the request log's entries, kept for one merge: use ``ctloop.requestlog``.

``LogSpool`` is the request log's one writer now (``RequestLogger``); wrapping a
writer in it returns the writer itself.
"""

from __future__ import annotations

from typing import Any

from ctloop.requestlog.entries import Entry
from ctloop.requestlog.writer import RequestLogger

__all__ = ["Entry", "LogSpool"]


class LogSpool(RequestLogger):
    """``LogSpool(RequestLogger(log))`` is that ``RequestLogger`` (one writer, one thread)."""

    def __new__(cls, target: RequestLogger, **_: Any) -> LogSpool:
        return target  # type: ignore[return-value]

    def __init__(self, target: RequestLogger, **_: Any) -> None:  # already initialised
        pass
