"""One clock for controllers, leases and stamps, injectable so tests need not wait.

Code that decides by time (cooldowns, schedules, lease expiry) asks a :class:`Clock`
instead of calling :func:`datetime.now` itself: the live controllers use
:data:`SYSTEM_CLOCK`, a test or a replay hands in a :class:`ManualClock` and moves it by
hand. ``now()`` is always timezone-aware UTC; ``monotonic()`` measures intervals;
``sleep()`` waits (a manual clock just moves on).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock", "as_clock", "instant_or_now",
           "utc_now"]


@runtime_checkable
class Clock(Protocol):
    """What time it is, how long since, and how to wait."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals only)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


SYSTEM_CLOCK: Clock = SystemClock()


def utc_now() -> datetime:
    """The system clock's ``now()``: timezone-aware UTC."""
    return SYSTEM_CLOCK.now()


def instant_or_now(text: str | None, bad: Callable[[str], Exception]) -> datetime:
    """``text`` as an aware datetime (UTC when it names no zone), or now when ``None``.

    The logical time of predictions (a request's ``now``, ``ctloop predict --now``):
    served and batch predictions read it alike. A text that is no ISO timestamp raises
    ``bad(text)``, the caller's error naming its own option.
    """
    if text is None:
        return utc_now()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise bad(text) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class ManualClock:
    """A clock a test moves by hand; ``sleep`` moves it instead of waiting."""

    def __init__(self, start: datetime) -> None:
        self._now = start if start.tzinfo else start.replace(tzinfo=UTC)
        self._monotonic = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def sleep(self, seconds: float) -> None:
        self.advance(seconds=max(0.0, seconds))

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (forward or back; ``monotonic`` moves forward only)."""
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        self._monotonic += max(0.0, (when - self._now).total_seconds())
        self._now = when

    def advance(self, **delta: float) -> None:
        """Move on by a :class:`~datetime.timedelta`'s keywords (``minutes=9``)."""
        self.set(self._now + timedelta(**delta))


class _CallableClock(SystemClock):
    """A bare ``() -> datetime`` function as a clock (the controllers' older argument)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._call = now

    def now(self) -> datetime:
        return self._call()


def as_clock(clock: Clock | Callable[[], datetime] | None) -> Clock:
    """``clock`` as a :class:`Clock`: the system clock for ``None``, a function giving
    the time wrapped (its intervals and waits are the system's)."""
    if clock is None:
        return SYSTEM_CLOCK
    if isinstance(clock, Clock):
        return clock
    return _CallableClock(clock)
