"""The one duration grammar every setting reads."""

from __future__ import annotations

import pytest

from ctloop.core.durations import duration_seconds, duration_text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("6h", 21600), ("2d", 172800), ("1w", 604800),
     (" 1.5 h ", 5400)],
)
def test_each_unit(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["soon", "3 spans", "-5m", "5y", "", "3600"])
def test_not_a_duration(text: str) -> None:
    assert duration_seconds(text) is None


def test_a_bare_number_only_where_the_caller_allows_it() -> None:
    assert duration_seconds("3600", unit_required=False) == 3600
    assert duration_seconds("3600") is None


@pytest.mark.parametrize("seconds", [45, 60, 5400, 86400, 604800, 1209600])
def test_text_reads_back(seconds: float) -> None:
    assert duration_seconds(duration_text(seconds)) == seconds
