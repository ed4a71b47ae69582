"""Keep a lease alive while work runs: one renewal loop for every holder.

A lease (the loop controller's ``loop:NAME``, a trigger's running claim) expires
unless its holder renews it, so a process killed with ``kill -9`` loses it by
itself. Every holder renews the same way: a daemon thread calls ``renew`` every
``every`` seconds until the work is done, and a renewal that fails with a
:class:`~ctloop.core.errors.CtloopError` (the database hiccuped) is skipped, the
next one tries again. What taking, renewing and dropping means is the holder's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ctloop.core.errors import CtloopError

__all__ = ["renewing"]


@contextmanager
def renewing(renew: Callable[[], object], every: float, *, name: str) -> Iterator[None]:
    """Call ``renew`` every ``every`` seconds on a thread named ``name`` while the block
    runs; the thread is stopped and joined when the block ends, however it ends."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                renew()
            except CtloopError:
                continue  # the next renewal tries again; the lease outlives one miss

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
