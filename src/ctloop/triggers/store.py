"""Controller memory and leases in the metadata database (SQLite, PostgreSQL, MySQL).

Controllers (the trigger controller, each loop's controller) keep what they
have seen, their cooldowns and last firings as small JSON documents, one per
``(scope, key)``. A change happens inside :meth:`ControllerState.update`, which
holds the scope's lock for the whole read-modify-write: SQLite's ``BEGIN
IMMEDIATE``, elsewhere ``SELECT … FOR UPDATE`` on the scope's sentinel row. So
two controllers on one project, on one machine or many, never both decide to
fire the same thing.

A :class:`Lease` names who may act for a while (``holder``, ``expires_at``).
The holder renews it while alive; a controller killed with ``kill -9`` simply
stops renewing and its lease expires, so another takes over without anyone
cleaning up. Lease times are wall-clock (they are about processes), whereas
windows, cooldowns and schedules run on the controller's injectable clock.
"""

from __future__ import annotations

import copy
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import sqlalchemy as sa

from ctloop.core.clock import utc_now
from ctloop.core.errors import StoreError
from ctloop.core.processes import Liveness, process_liveness
from ctloop.metadata.engine import create_engine, describe_url, translate_connect_error
from ctloop.metadata.migrate import upgrade
from ctloop.metadata.schema import controller_state, leases

__all__ = ["ControllerState", "Document", "Lease", "describe_holder", "holder_id",
           "holder_liveness"]

Document: TypeAlias = dict[str, Any]
"""One stored JSON document, handed out mutable so a caller may change it in place
(``docs["a"]["seen"].append(x)``, as the contract suite and the loop's tests do). No JSON
type without ``Any`` allows that, so this alias is this module's one ``Any`` (see
``pyproject.toml``); typed readers (:class:`ctloop.triggers.state.TriggerEntry`,
:class:`ctloop.loop.memory.LoopMemory`) take it as a read-only ``JSONObject``."""

_SENTINEL = ""  # the key whose row is locked to serialize a scope


def holder_id() -> str:
    """Who this process is, for leases: host, pid and a random part (pids get reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_liveness(holder: str) -> Liveness:
    """Whether the process a :func:`holder_id` names runs (unknown for another host)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if not pid.isdigit():
        return Liveness.UNKNOWN
    return process_liveness({"host": host, "pid": int(pid)})


def describe_holder(holder: str) -> str:
    """A lease holder in words: a live process here, one that is gone, or another host's."""
    liveness = holder_liveness(holder)
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if liveness is Liveness.ALIVE:
        return f"a live controller (pid {pid} on this host)"
    if liveness is Liveness.DEAD:
        return f"a process that is gone (pid {pid} on this host)"
    return f"a controller on host {host} (pid {pid}), until its lease runs out"


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


@dataclass(frozen=True)
class Lease:
    """Who holds ``name`` and until when (UTC)."""

    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime

    def alive(self, now: datetime | None = None) -> bool:
        return (now or utc_now()) < self.expires_at


class ControllerState:
    """Locked JSON documents per ``(scope, key)`` plus leases, in the metadata database."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self._engine = create_engine(url)
        self._dialect = self._engine.dialect.name
        try:
            if migrate:
                upgrade(self._engine, url_for_humans=describe_url(url))
        except sa.exc.SQLAlchemyError as exc:
            self._engine.dispose()
            raise translate_connect_error(exc, url) from None

    def __repr__(self) -> str:
        return f"ControllerState({describe_url(self.url)!r})"

    def close(self) -> None:
        self._engine.dispose()

    # -- documents ---------------------------------------------------------------

    def read(self, scope: str) -> dict[str, Document]:
        """A snapshot of every document of ``scope`` (no lock)."""
        with self._guard(), self._engine.connect() as conn:
            rows = conn.execute(sa.select(controller_state.c.key, controller_state.c.value)
                                .where(controller_state.c.scope == scope)).all()
        return {r.key: dict(r.value) for r in rows if r.key != _SENTINEL}

    @contextmanager
    def update(self, scope: str) -> Iterator[dict[str, Document]]:
        """Hold the scope's lock; yield its documents to change; write back what changed.

        A key deleted from the yielded dict is deleted from the database. An
        exception inside the block writes nothing.
        """
        with self._guard(), self._locked(scope) as conn:
            rows = conn.execute(sa.select(controller_state.c.key, controller_state.c.value)
                                .where(controller_state.c.scope == scope)).all()
            before = {r.key: dict(r.value) for r in rows if r.key != _SENTINEL}
            docs = copy.deepcopy(before)
            yield docs
            now = _naive(utc_now())
            table = controller_state
            for key in set(before) - set(docs):
                conn.execute(table.delete().where(table.c.scope == scope, table.c.key == key))
            for key, value in docs.items():
                if key == _SENTINEL or before.get(key) == value:
                    continue
                if key in before:
                    conn.execute(table.update()
                                 .where(table.c.scope == scope, table.c.key == key)
                                 .values(value=value, updated_at=now))
                else:
                    conn.execute(table.insert().values(scope=scope, key=key, value=value,
                                                       updated_at=now))

    @contextmanager
    def _locked(self, scope: str) -> Iterator[sa.Connection]:
        table = controller_state
        with self._engine.connect() as conn:
            if self._dialect == "sqlite":  # one writer at a time for the whole file
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
                return
            self._ensure_sentinel(scope)
            with conn.begin():
                conn.execute(sa.select(table.c.key).where(
                    table.c.scope == scope, table.c.key == _SENTINEL).with_for_update())
                yield conn

    def _ensure_sentinel(self, scope: str) -> None:
        table = controller_state
        with self._engine.connect() as conn, conn.begin():
            exists = conn.execute(sa.select(table.c.key).where(
                table.c.scope == scope, table.c.key == _SENTINEL)).first()
            if exists:
                return
        try:
            with self._engine.connect() as conn, conn.begin():
                conn.execute(table.insert().values(scope=scope, key=_SENTINEL, value={},
                                                   updated_at=_naive(utc_now())))
        except sa.exc.IntegrityError:
            pass  # another controller created it first

    # -- leases ------------------------------------------------------------------

    def acquire(self, name: str, holder: str, ttl: float, *, now: datetime | None = None
                ) -> bool:
        """Take or renew lease ``name`` for ``ttl`` seconds; False while another holds it."""
        now = now or utc_now()
        expires = _naive(now + timedelta(seconds=ttl))
        with self._guard():
            with self._engine.begin() as conn:
                moved = conn.execute(
                    leases.update()
                    .where(leases.c.name == name,
                           sa.or_(leases.c.holder == holder, leases.c.expires_at <= _naive(now)))
                    .values(holder=holder, expires_at=expires, acquired_at=_naive(now))
                ).rowcount
            if moved:
                return True
            try:
                with self._engine.begin() as conn:
                    conn.execute(leases.insert().values(name=name, holder=holder,
                                                        acquired_at=_naive(now),
                                                        expires_at=expires))
            except sa.exc.IntegrityError:
                return self._take_from_the_dead(name, holder, now, expires)
            return True

    def _take_from_the_dead(self, name: str, holder: str, now: datetime, expires: datetime
                            ) -> bool:
        """Take lease ``name`` at once when its holder is provably gone (same host, no such
        process), instead of waiting for the lease to run out."""
        current = self.lease(name)
        if current is None or holder_liveness(current.holder) is not Liveness.DEAD:
            return False
        with self._guard(), self._engine.begin() as conn:
            return bool(conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.holder == current.holder)
                .values(holder=holder, expires_at=expires, acquired_at=_naive(now))
            ).rowcount)

    def release(self, name: str, holder: str) -> None:
        """Give lease ``name`` up (only if ``holder`` still holds it)."""
        with self._guard(), self._engine.begin() as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))

    def lease(self, name: str) -> Lease | None:
        with self._guard(), self._engine.connect() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        if row is None:
            return None
        return Lease(row.name, row.holder, row.acquired_at.replace(tzinfo=UTC),
                     row.expires_at.replace(tzinfo=UTC))

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.IntegrityError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            detail = " ".join(str(getattr(exc, "orig", exc)).split())
            raise StoreError(f"The controller state in {describe_url(self.url)} failed: "
                             f"{detail}. Retry; check the database server if it persists."
                             ) from exc
