"""The trigger controller's memory: typed records, one per trigger, read and written whole.

Kept in the metadata database (:class:`ctloop.triggers.store.ControllerState`, scope
``triggers``), one JSON document per trigger, shared by every controller of a project::

    {last_fired, last_checked, last_status, last_run_id, last_error,
     running: {pid, host, expires, since}, cron_anchor, seen: [path],
     history: [{trigger, kind, status, info, run_id, error, at}]}

Everything else reads it through :class:`TriggerEntry` (``from_json``/``to_json``),
never by key paths, as the loop keeps its memory in :class:`ctloop.loop.memory.LoopMemory`.
The reader is tolerant: documents of earlier versions (a claim without ``expires``, a pid
written as text, a history item without ``info``) load, and keys it does not know are
kept and written back unchanged, so controllers of two versions can share one database.

A running claim carries a lease expiry that its controller renews while the pipeline
runs: a claim whose process died (same host) or whose lease ran out (any host) is stale.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal, TypedDict, get_args

from ctloop.core.clock import utc_now
from ctloop.core.jsontypes import (
    JSONObject,
    JSONValue,
    as_list,
    as_number,
    as_object,
    as_str,
    as_strs,
)
from ctloop.core.processes import Liveness, process_liveness
from ctloop.triggers.store import ControllerState

__all__ = ["CLAIM_TTL", "Claim", "Firing", "FiringInfo", "FiringStatus", "TriggerEntry",
           "TriggerState", "claim_alive", "this_process"]

CLAIM_TTL = 120.0  # seconds a running claim lives without renewal

_HISTORY = 20  # firings kept per trigger

FiringStatus = Literal["running", "succeeded", "failed", "error"]
"""``running`` (announced at the start), ``succeeded``/``failed`` (the pipeline),
``error`` (the condition could not be evaluated)."""
_STATUSES: tuple[FiringStatus, ...] = get_args(FiringStatus)


def _status(value: object) -> FiringStatus | None:
    for status in _STATUSES:
        if value == status:
            return status
    return None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class FiringInfo(TypedDict, total=False):
    """Why a trigger fired: its condition's facts, kept on the run as ``trigger_info`` and
    the names a trigger's ``params`` placeholders may use (``{path}``, ``{summary}`` ...)."""

    trigger: str  # the trigger's name
    path: str  # new_data: the file (absolute), its name and modification time
    name: str
    mtime: str
    scheduled: str  # cron: the scheduled time (ISO)
    summary: str  # degradation, drift: the monitor's verdict in words, and its numbers
    value: float
    threshold: float | None
    baseline: float | None
    n: int
    report: str  # the monitor report's artifact id
    model: str
    by: str  # manual: "manual", and what the person passed
    reason: str


_INFO_STRS = ("trigger", "path", "name", "mtime", "scheduled", "summary", "report", "model",
              "by", "reason")


def info_from_json(data: JSONObject) -> FiringInfo:
    """A stored ``FiringInfo`` (keys of other types or unknown names are left out)."""
    info = FiringInfo()
    for key in _INFO_STRS:
        value = data.get(key)
        if isinstance(value, str):
            info[key] = value  # type: ignore[literal-required]  # one of FiringInfo's str keys
    value = as_number(data.get("value"))
    if value is not None:
        info["value"] = value
    if "threshold" in data:
        info["threshold"] = as_number(data.get("threshold"))
    if "baseline" in data:
        info["baseline"] = as_number(data.get("baseline"))
    n = data.get("n")
    if isinstance(n, int) and not isinstance(n, bool):
        info["n"] = n
    return info


def info_to_json(info: FiringInfo) -> dict[str, JSONValue]:
    """``info`` as the JSON object a run keeps (what a person passed to a manual fire
    beyond FiringInfo's keys is kept too, in its JSON form)."""
    return {key: _json(value) for key, value in info.items()}


def _json(value: object) -> JSONValue:
    if value is None or isinstance(value, str | int | float):
        return value
    plain: JSONValue = json.loads(json.dumps(value, default=str))
    return plain


@dataclass(frozen=True)
class Firing:
    """One start of a pipeline by a trigger (or one evaluation that failed)."""

    trigger: str
    kind: str
    status: FiringStatus
    info: FiringInfo = field(default_factory=lambda: FiringInfo())
    run_id: str | None = None
    error: str | None = None
    at: str = ""

    def to_json(self) -> dict[str, JSONValue]:
        return {"trigger": self.trigger, "kind": self.kind, "status": self.status,
                "info": info_to_json(self.info), "run_id": self.run_id, "error": self.error,
                "at": self.at}

    @classmethod
    def from_json(cls, data: JSONObject) -> Firing:
        """A history item; an unknown status reads as ``error``."""
        return cls(trigger=as_str(data.get("trigger")), kind=as_str(data.get("kind")),
                   status=_status(data.get("status")) or "error",
                   info=info_from_json(as_object(data.get("info"))),
                   run_id=_opt_str(data.get("run_id")),
                   error=_opt_str(data.get("error")), at=as_str(data.get("at")))


@dataclass(frozen=True)
class Claim:
    """Who runs a trigger's pipeline now: a process (``host``, ``pid``), since when
    (controller clock) and until when its lease holds without renewal (wall clock)."""

    pid: int | None = None
    host: str | None = None
    expires: str | None = None  # ISO; claims written before leases have none
    since: str | None = None

    @classmethod
    def from_json(cls, data: JSONObject) -> Claim:
        pid = data.get("pid")
        if isinstance(pid, str) and pid.strip().isdigit():
            pid = int(pid)
        return cls(pid=int(pid) if isinstance(pid, int | float) and not isinstance(pid, bool)
                   else None,
                   host=_opt_str(data.get("host")), expires=_opt_str(data.get("expires")),
                   since=_opt_str(data.get("since")))

    def to_json(self) -> dict[str, JSONValue]:
        fields = (("pid", self.pid), ("host", self.host), ("expires", self.expires),
                  ("since", self.since))
        return {key: value for key, value in fields if value is not None}

    def renewed(self, ttl: float = CLAIM_TTL) -> Claim:
        """The same claim, its lease ``ttl`` wall seconds from now."""
        return replace(self, expires=(utc_now() + timedelta(seconds=ttl)).isoformat())


def this_process(ttl: float = CLAIM_TTL, since: str | None = None) -> Claim:
    """A claim by this process, valid ``ttl`` wall seconds unless renewed."""
    return Claim(pid=os.getpid(), host=socket.gethostname(), since=since).renewed(ttl)


def claim_alive(claim: Claim | None) -> bool:
    """Is the process that claimed a trigger still running? (Unknown hosts count as alive.)"""
    if claim is None:
        return False
    if claim.expires and datetime.fromisoformat(claim.expires) <= utc_now():
        return False  # its holder stopped renewing: dead or cut off
    # Another host's claim counts as held until it expires; here the process decides.
    return process_liveness({"host": claim.host, "pid": claim.pid}) is not Liveness.DEAD


_KNOWN = frozenset({"last_fired", "last_checked", "last_status", "last_run_id", "last_error",
                    "running", "cron_anchor", "seen", "history"})


@dataclass
class TriggerEntry:
    """What the controllers remember about one trigger."""

    last_fired: str | None = None  # ISO controller time; the cooldown counts from here
    last_checked: str | None = None
    last_status: FiringStatus | None = None
    last_run_id: str | None = None
    last_error: str | None = None
    running: Claim | None = None
    cron_anchor: str | None = None  # ISO: the schedule counts from here
    seen: list[str] = field(default_factory=list)  # new data: absolute paths already fired
    history: list[Firing] = field(default_factory=list)  # the last firings, oldest first
    unknown: dict[str, JSONValue] = field(default_factory=dict)  # kept as read

    @classmethod
    def from_json(cls, data: JSONObject) -> TriggerEntry:
        running = as_object(data.get("running"))
        return cls(
            last_fired=_opt_str(data.get("last_fired")),
            last_checked=_opt_str(data.get("last_checked")),
            last_status=_status(data.get("last_status")),
            last_run_id=_opt_str(data.get("last_run_id")),
            last_error=_opt_str(data.get("last_error")),
            running=Claim.from_json(running) if running else None,
            cron_anchor=_opt_str(data.get("cron_anchor")),
            seen=as_strs(data.get("seen")),
            history=[Firing.from_json(item) for item in as_list(data.get("history"))
                     if isinstance(item, Mapping)],
            unknown={k: v for k, v in data.items() if k not in _KNOWN},
        )

    def to_json(self) -> dict[str, JSONValue]:
        fields = (("last_fired", self.last_fired), ("last_checked", self.last_checked),
                  ("last_status", self.last_status), ("last_run_id", self.last_run_id),
                  ("last_error", self.last_error), ("cron_anchor", self.cron_anchor))
        out: dict[str, JSONValue] = dict(self.unknown)
        out.update((key, value) for key, value in fields if value is not None)
        if self.running is not None:
            out["running"] = self.running.to_json()
        if self.seen:
            out["seen"] = list(self.seen)
        if self.history:
            out["history"] = [f.to_json() for f in self.history]
        return out

    def add_history(self, firing: Firing) -> None:
        self.history = [*self.history, firing][-_HISTORY:]


class TriggerState:
    """The trigger controller's memory in the metadata database (scope ``triggers``).

    ``read()`` loads every trigger's entry; ``entry(name)`` holds the scope's lock for
    the whole read-modify-write of one.
    """

    scope = "triggers"

    def __init__(self, store: ControllerState) -> None:
        self.store = store

    def read(self) -> dict[str, TriggerEntry]:
        return {name: TriggerEntry.from_json(doc)
                for name, doc in self.store.read(self.scope).items()}

    @contextmanager
    def entry(self, name: str) -> Iterator[TriggerEntry]:
        """One trigger's entry (empty on first use) to change; written back on exit,
        nothing written when the block raises."""
        with self.store.update(self.scope) as docs:
            entry = TriggerEntry.from_json(docs.get(name) or {})
            yield entry
            docs[name] = entry.to_json()
