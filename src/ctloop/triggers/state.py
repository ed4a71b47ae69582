"""The controller's memory: last fires, files seen, running claims.

One JSON file (``home/triggers/state.json``) shared by every controller of a
project. Each change happens inside an exclusive lock on a sibling ``.lock``
file and is written to a temporary file then renamed, so a crash never leaves
half a file and two controllers never both decide to fire the same trigger.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ctloop.core.errors import StoreError

__all__ = ["StateFile", "claim_alive"]

_HISTORY = 20  # firings kept per trigger


class StateFile:
    """Locked read-modify-write access to the triggers' state."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.Lock()  # flock is per open file, not per thread

    def read(self) -> dict[str, Any]:
        """A snapshot (no lock: the file is only ever replaced whole)."""
        if not self.path.exists():
            return {"triggers": {}}
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"Cannot read the triggers state {self.path}: {exc}. Delete the file to start "
                "afresh (new-data triggers will then see every file as new)."
            ) from exc

    @contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Hold the lock; yield the state to change; write it back atomically."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create {self.path.parent}: {exc}.") from exc
        with self._thread_lock, open(self._lock_path, "a+") as handle:
            _lock(handle)
            try:
                state = self.read()
                yield state
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(state, indent=1, sort_keys=True, default=str))
                os.replace(tmp, self.path)
            finally:
                _unlock(handle)


def trigger_state(state: dict[str, Any], name: str) -> dict[str, Any]:
    """The entry of one trigger, created on first use."""
    return state.setdefault("triggers", {}).setdefault(name, {})


def add_history(entry: dict[str, Any], item: dict[str, Any]) -> None:
    history = entry.setdefault("history", [])
    history.append(item)
    del history[:-_HISTORY]


def this_process() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def claim_alive(claim: dict[str, Any] | None) -> bool:
    """Is the process that claimed a trigger still running? (Unknown hosts count as alive.)"""
    if not claim:
        return False
    if claim.get("host") != socket.gethostname():
        return True
    pid = int(claim.get("pid", 0))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock(handle: Any) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: msvcrt locks a byte range instead
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def _unlock(handle: Any) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
