"""Is a recorded process still running? One answer for the engine and the triggers.

A run or a trigger claim records ``{"host": ..., "pid": ...}``. On the same host
the answer is exact: the pid exists, is not a zombie, and is a Python/ctloop
process (a reused pid of another program does not count). On another host this
machine cannot know, so the answer is :attr:`Liveness.UNKNOWN`; each caller
decides what unknown means for it (the engine refuses to resume such a run
unless forced, a trigger controller treats the claim as held).
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Mapping

__all__ = ["Liveness", "process_liveness", "this_process"]


class Liveness(enum.Enum):
    """What this machine can tell about a recorded process."""

    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  # recorded on another host


def this_process() -> dict[str, str | int]:
    """The ``{"host", "pid"}`` record of the calling process."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def process_liveness(record: Mapping[str, object] | None) -> Liveness:
    """Liveness of the process a ``{"host", "pid"}`` record names.

    A missing record or pid is dead; the calling process itself counts as alive.
    """
    if not record:
        return Liveness.DEAD
    host = record.get("host")
    if host and host != socket.gethostname():
        return Liveness.UNKNOWN
    recorded = record.get("pid") or 0
    if not isinstance(recorded, int | float | str):
        return Liveness.DEAD
    try:
        pid = int(recorded)
    except ValueError:
        return Liveness.DEAD
    if pid <= 0:
        return Liveness.DEAD
    if pid == os.getpid():
        return Liveness.ALIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return Liveness.DEAD
    except PermissionError:  # exists, owned by someone else
        return Liveness.ALIVE
    except OSError:
        return Liveness.DEAD
    return _linux_check(pid)


def _linux_check(pid: int) -> Liveness:
    """On Linux, rule out zombies and pids reused by another program."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:  # no /proc (macOS): the pid exists, that is all we know
        return Liveness.ALIVE
    state = stat.rpartition(b")")[2].split()[:1]
    if state in ([b"Z"], [b"X"]):
        return Liveness.DEAD
    if not cmdline or b"ctloop" in cmdline or b"python" in cmdline:
        return Liveness.ALIVE  # empty while the process execs: assume the recorded one
    return Liveness.DEAD
