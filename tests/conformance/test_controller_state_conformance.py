"""Controller state and leases behave the same on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ctloop.testing.databases import temporary_metadata_url
from ctloop.testing.services import unique_name
from ctloop.triggers.store import ControllerState


@pytest.fixture(scope="module", params=["sqlite", "postgres", "mysql"])
def state(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ControllerState]:
    # A schema (PostgreSQL) or database (MariaDB) of its own, dropped afterwards.
    with temporary_metadata_url(request.param, tmp_path_factory.mktemp("st")) as url:
        opened = ControllerState(url)
        yield opened
        opened.close()


def test_documents_round_trip_and_delete(state: ControllerState) -> None:
    scope = unique_name("scope")
    assert state.read(scope) == {}
    with state.update(scope) as docs:
        docs["a"] = {"seen": ["x"], "n": 1}
        docs["b"] = {"n": 2}
    assert state.read(scope) == {"a": {"seen": ["x"], "n": 1}, "b": {"n": 2}}
    with state.update(scope) as docs:
        docs["a"]["seen"].append("y")
        del docs["b"]
    assert state.read(scope) == {"a": {"seen": ["x", "y"], "n": 1}}


def test_a_failed_update_writes_nothing(state: ControllerState) -> None:
    scope = unique_name("scope")
    with state.update(scope) as docs:
        docs["a"] = {"n": 1}
    with pytest.raises(RuntimeError), state.update(scope) as docs:
        docs["a"]["n"] = 99
        raise RuntimeError("crash mid-update")
    assert state.read(scope) == {"a": {"n": 1}}


def test_concurrent_updates_lose_nothing(state: ControllerState) -> None:
    scope = unique_name("scope")
    barrier = threading.Barrier(3)

    def bump() -> None:
        barrier.wait()
        for _ in range(10):
            with state.update(scope) as docs:
                entry = docs.setdefault("counter", {"n": 0})
                entry["n"] += 1

    threads = [threading.Thread(target=bump) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.read(scope) == {"counter": {"n": 30}}


def test_a_lease_has_one_holder_until_it_expires(state: ControllerState) -> None:
    name = unique_name("lease")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert state.acquire(name, "a", 60, now=now)
    assert not state.acquire(name, "b", 60, now=now + timedelta(seconds=30))
    assert state.acquire(name, "a", 60, now=now + timedelta(seconds=30))  # renewal
    lease = state.lease(name)
    assert lease is not None and lease.holder == "a"
    assert lease.expires_at == now + timedelta(seconds=90)
    # "a" died without releasing: once its lease ran out, "b" takes over.
    assert state.acquire(name, "b", 60, now=now + timedelta(seconds=91))
    assert not state.acquire(name, "a", 60, now=now + timedelta(seconds=92))
    state.release(name, "a")  # not the holder: no effect
    assert state.lease(name).holder == "b"  # type: ignore[union-attr]
    state.release(name, "b")
    assert state.lease(name) is None


def test_a_lease_whose_holder_is_gone_is_taken_at_once(state: ControllerState) -> None:
    import os
    import socket

    from ctloop.triggers.store import describe_holder

    host = socket.gethostname()
    gone, live = f"{host}:999999999:dead", f"{host}:{os.getpid()}:live"
    name, other = unique_name("lease"), unique_name("lease")
    now = datetime.now(UTC)
    assert state.acquire(name, gone, 60, now=now)
    assert state.acquire(name, "next", 60, now=now + timedelta(seconds=1))  # not 60 s later
    assert state.lease(name).holder == "next"  # type: ignore[union-attr]
    assert state.acquire(other, live, 60, now=now)
    assert not state.acquire(other, "next", 60, now=now + timedelta(seconds=1))
    assert describe_holder(gone).startswith("a process that is gone")
    assert describe_holder(live).startswith("a live controller")
    assert describe_holder("elsewhere:12:x").startswith("a controller on host elsewhere")


def test_racing_acquirers_get_one_lease(state: ControllerState) -> None:
    name = unique_name("lease")
    won: list[str] = []
    barrier = threading.Barrier(4)

    def grab(who: str) -> None:
        barrier.wait()
        if state.acquire(name, who, 60):
            won.append(who)

    threads = [threading.Thread(target=grab, args=(f"h{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_sqlite_state_lives_in_the_metadata_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'md.db'}"
    first = ControllerState(url)
    with first.update("s") as docs:
        docs["k"] = {"v": 1}
    first.close()
    assert ControllerState(url).read("s") == {"k": {"v": 1}}
