"""The one clock: the system's is aware UTC, a manual one moves only by hand, and a bare
function giving the time still serves as a controller's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ctloop.core.clock import (
    SYSTEM_CLOCK,
    Clock,
    ManualClock,
    as_clock,
    instant_or_now,
    utc_now,
)


def test_the_system_clock_is_aware_utc_and_monotonic_never_goes_back() -> None:
    now = utc_now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    first = SYSTEM_CLOCK.monotonic()
    assert SYSTEM_CLOCK.monotonic() >= first
    assert isinstance(SYSTEM_CLOCK, Clock)


def test_a_manual_clock_moves_only_when_told_and_sleep_moves_it() -> None:
    clock = ManualClock(datetime(2024, 5, 1, 10, 0))
    assert clock.now() == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert clock.now() == clock.now()
    clock.advance(minutes=9)
    assert clock.now() == datetime(2024, 5, 1, 10, 9, tzinfo=UTC)
    clock.sleep(60)
    assert clock.now() == datetime(2024, 5, 1, 10, 10, tzinfo=UTC)
    assert clock.monotonic() == 600.0
    clock.set(datetime(2024, 5, 1, 9, 0, tzinfo=UTC))  # back in time: monotonic stays
    assert clock.now().hour == 9 and clock.monotonic() == 600.0
    assert isinstance(clock, Clock)


def test_a_manual_clock_keeps_the_zone_it_was_given() -> None:
    paris = timezone(timedelta(hours=1))
    clock = ManualClock(datetime(2024, 1, 1, 12, tzinfo=paris))
    assert clock.now().utcoffset() == timedelta(hours=1)


def test_as_clock_takes_none_a_clock_or_a_function() -> None:
    assert as_clock(None) is SYSTEM_CLOCK
    manual = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    assert as_clock(manual) is manual
    fixed = datetime(2013, 6, 1, tzinfo=UTC)
    wrapped = as_clock(lambda: fixed)
    assert wrapped.now() == fixed
    assert wrapped.monotonic() <= SYSTEM_CLOCK.monotonic()


def test_instant_or_now_reads_iso_text_as_aware_and_raises_the_callers_error() -> None:
    assert instant_or_now("2013-06-01T12:00:00", ValueError) == \
        datetime(2013, 6, 1, 12, tzinfo=UTC)
    paris = instant_or_now("2013-06-01T12:00:00+01:00", ValueError)
    assert paris.utcoffset() == timedelta(hours=1)
    before = utc_now()
    assert before <= instant_or_now(None, ValueError) <= utc_now()

    class Bad(Exception):
        pass

    with pytest.raises(Bad, match="yesterday"):
        instant_or_now("yesterday", Bad)
