"""Set environment variables for a block and put back what was there.

A command that reads a replay's sandbox (``CTLOOP_HOME``) or a server that hands
its options to the workers it spawns changes ``os.environ`` for a while; both must
leave it as they found it, unset variables unset, whatever the block raises.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = ["environment"]


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Within the block each variable of ``values`` is set (``None``: unset); after it,
    each is back to its value before (or unset again). Other variables are left alone."""
    saved = {key: os.environ.get(key) for key in values}
    _apply(values)
    try:
        yield
    finally:
        _apply(saved)


def _apply(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
