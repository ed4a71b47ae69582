"""Log entries built off the request path, handed to the request log in order.

A handler hands over a closure (arrays it already has, no per-row work); one
thread runs the closures, which build the ``LogBatch`` frames (and outlier
scores), and passes the batches to ``RequestLogger.submit``, many at a time.
Nothing is dropped: the spool is unbounded and drains in milliseconds; the
request log's own durability window applies from the moment it receives a
batch. ``flush()`` returns once everything submitted so far reached the log
and the log flushed; ``close()`` drains, then closes the log.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from ctloop.serving.requestlog import LogBatch, RequestLogger

__all__ = ["LogSpool"]

log = logging.getLogger("ctloop.serving")

Entry = Callable[[], list[LogBatch]]


class LogSpool:
    """An unbounded FIFO of log entries in front of a ``RequestLogger``."""

    def __init__(self, target: RequestLogger) -> None:
        self.target = target
        self.entries = 0
        self.failed = 0
        self._queue: deque[Entry] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="ctloop-log-spool", daemon=True)
        self._thread.start()

    @property
    def written(self) -> int:
        return int(getattr(self.target, "written", 0))

    @property
    def dropped(self) -> int:
        return int(getattr(self.target, "dropped", 0))

    def submit(self, entry: Entry) -> None:
        """Queue one request's log entry (never blocks, never drops)."""
        with self._cond:
            self._queue.append(entry)
            if len(self._queue) == 1:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue and self._closing:
                    return
                entries = list(self._queue)
                self._queue.clear()
                self._busy = True
            batches: list[LogBatch] = []
            for entry in entries:
                try:
                    batches.extend(entry())
                except Exception:  # one broken entry must not lose the others
                    self.failed += 1
                    log.exception("building a request log entry failed")
            try:
                if batches:
                    self.target.submit(batches)
                self.entries += len(entries)
            except Exception:
                self.failed += len(entries)
                log.exception("handing entries to the request log failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every entry submitted so far reached the request log."""
        with self._cond:
            self._cond.wait_for(lambda: not self._queue and not self._busy, timeout=timeout)

    def flush(self) -> None:
        """Everything submitted so far is in the log and flushed."""
        self.drain()
        self.target.flush()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=30)
        self.target.close()
