"""The trigger controller's memory: last fires, files seen, running claims.

Kept in the metadata database (:class:`ctloop.triggers.store.ControllerState`),
shared by every controller of a project. A running claim carries a lease
expiry that its controller renews while the pipeline runs: a claim whose
process died (same host) or whose lease ran out (any host) is stale.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from ctloop.core.clock import utc_now
from ctloop.core.processes import Liveness, process_liveness
from ctloop.triggers.store import ControllerState

__all__ = ["CLAIM_TTL", "TriggerState", "claim_alive", "this_process"]

CLAIM_TTL = 120.0  # seconds a running claim lives without renewal

_HISTORY = 20  # firings kept per trigger


class TriggerState:
    """The trigger controller's memory in the metadata database (scope ``triggers``).

    ``read()`` and ``update()`` present it as ``{"triggers": {name: entry}}``;
    ``update`` holds the scope's lock for the whole read-modify-write.
    """

    scope = "triggers"

    def __init__(self, store: ControllerState) -> None:
        self.store = store

    def read(self) -> dict[str, Any]:
        return {"triggers": self.store.read(self.scope)}

    @contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        with self.store.update(self.scope) as docs:
            state: dict[str, Any] = {"triggers": docs}
            yield state
            fresh = state.get("triggers", {})
            if fresh is not docs:
                docs.clear()
                docs.update(fresh)


def trigger_state(state: dict[str, Any], name: str) -> dict[str, Any]:
    """The entry of one trigger, created on first use."""
    entry: dict[str, Any] = state.setdefault("triggers", {}).setdefault(name, {})
    return entry


def add_history(entry: dict[str, Any], item: dict[str, Any]) -> None:
    history = entry.setdefault("history", [])
    history.append(item)
    del history[:-_HISTORY]


def this_process(ttl: float = CLAIM_TTL) -> dict[str, Any]:
    """A claim by this process, valid ``ttl`` wall seconds unless renewed."""
    expires = utc_now() + timedelta(seconds=ttl)
    return {"pid": os.getpid(), "host": socket.gethostname(), "expires": expires.isoformat()}


def claim_alive(claim: dict[str, Any] | None) -> bool:
    """Is the process that claimed a trigger still running? (Unknown hosts count as alive.)"""
    if not claim:
        return False
    expires = claim.get("expires")
    if expires and datetime.fromisoformat(expires) <= utc_now():
        return False  # its holder stopped renewing: dead or cut off
    # Another host's claim counts as held until it expires; here the process decides.
    return process_liveness(claim) is not Liveness.DEAD
