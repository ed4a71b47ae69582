"""When a retrain signal may fire: the schedule and the cooldown, one rule for all.

The declared loop (:mod:`ctloop.loop.policy`, in event time during a replay) and the
trigger controller (:mod:`ctloop.triggers.controller`, on its clock) both decide with
these, so a cron text or a cooldown means the same in a ``[ctloop.loops.NAME]`` table
and in a ``[ctloop.triggers.NAME]`` table. What a signal's memory keeps (the anchor,
the last firing) is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["ScheduleCheck", "check_schedule", "cooling_until", "last_scheduled"]


@dataclass(frozen=True)
class ScheduleCheck:
    """A schedule's verdict: ``due`` is the first scheduled time after the anchor."""

    fired: bool
    due: datetime


def check_schedule(expr: str, anchor: str, now: datetime) -> ScheduleCheck:
    """Has a scheduled time of cron ``expr`` passed since ``anchor`` (ISO text)?

    The first evaluation of a schedule only anchors it (the caller's memory), so the
    past is never caught up, and missed times collapse into one firing, like
    Airflow's ``catchup=False``.
    """
    from croniter import croniter

    due = croniter(expr, datetime.fromisoformat(anchor)).get_next(datetime)
    return ScheduleCheck(fired=due <= now, due=due)


def last_scheduled(expr: str, now: datetime) -> datetime:
    """The latest scheduled time of ``expr`` at or before ``now``."""
    from croniter import croniter

    latest: datetime = croniter(expr, now + timedelta(microseconds=1)).get_prev(datetime)
    return latest


def cooling_until(last_fired: str | None, cooldown: float, now: datetime) -> datetime | None:
    """The end of the cooldown when ``now`` is still within ``cooldown`` seconds of the
    last firing (ISO text), else ``None`` (no cooldown, never fired, or over)."""
    if not cooldown or not last_fired:
        return None
    until = datetime.fromisoformat(last_fired) + timedelta(seconds=cooldown)
    return until if now < until else None
