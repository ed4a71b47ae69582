"""One schedule and cooldown rule for the loop and the triggers."""

from __future__ import annotations

from datetime import UTC, datetime

from ctloop.monitoring.signals import check_schedule, cooling_until, last_scheduled

T = datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)


def test_a_schedule_fires_once_its_next_time_after_the_anchor_has_passed() -> None:
    anchor = T.isoformat()
    waiting = check_schedule("*/5 * * * *", anchor, datetime(2024, 5, 1, 10, 4, 59, tzinfo=UTC))
    assert not waiting.fired and waiting.due == datetime(2024, 5, 1, 10, 5, tzinfo=UTC)
    due = check_schedule("*/5 * * * *", anchor, datetime(2024, 5, 1, 10, 5, tzinfo=UTC))
    assert due.fired and due.due == datetime(2024, 5, 1, 10, 5, tzinfo=UTC)
    missed = check_schedule("*/5 * * * *", anchor, datetime(2024, 5, 1, 10, 17, tzinfo=UTC))
    assert missed.fired and missed.due == datetime(2024, 5, 1, 10, 5, tzinfo=UTC)


def test_the_latest_scheduled_time_counts_now_itself() -> None:
    assert last_scheduled("*/5 * * * *", datetime(2024, 5, 1, 10, 17, tzinfo=UTC)) == \
        datetime(2024, 5, 1, 10, 15, tzinfo=UTC)
    assert last_scheduled("*/5 * * * *", datetime(2024, 5, 1, 10, 15, tzinfo=UTC)) == \
        datetime(2024, 5, 1, 10, 15, tzinfo=UTC)


def test_a_cooldown_holds_until_it_is_over() -> None:
    last = T.isoformat()
    assert cooling_until(last, 600, datetime(2024, 5, 1, 10, 9, 30, tzinfo=UTC)) == \
        datetime(2024, 5, 1, 10, 10, 30, tzinfo=UTC)
    assert cooling_until(last, 600, datetime(2024, 5, 1, 10, 10, 30, tzinfo=UTC)) is None
    assert cooling_until(None, 600, T) is None
    assert cooling_until(last, 0, T) is None
