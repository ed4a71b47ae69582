"""One renewal loop for every lease: it renews while the block runs, survives a failed
renewal, and stops with the block, even when the block raises."""

from __future__ import annotations

import threading

import pytest

from ctloop.core.errors import StoreError
from ctloop.core.leases import renewing
from ctloop.testing.services import wait_until


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_renews_while_the_block_runs_and_stops_after_it() -> None:
    calls: list[int] = []
    with renewing(lambda: calls.append(1), 0.01, name="lease-test-a"):
        assert len(_threads("lease-test-a")) == 1
        wait_until(lambda: len(calls) >= 3, "three renewals", timeout=10, interval=0.01)
    assert _threads("lease-test-a") == []  # joined: nothing renews once the block is over


def test_a_failed_renewal_is_skipped_and_the_next_one_tries_again() -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise StoreError("the database hiccuped")

    with renewing(flaky, 0.01, name="lease-test-b"):
        wait_until(lambda: len(calls) >= 2, "a renewal after the failed one", timeout=10,
                   interval=0.01)


def test_the_thread_stops_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), renewing(lambda: None, 0.01, name="lease-test-c"):
        raise RuntimeError("work failed")
    assert _threads("lease-test-c") == []
