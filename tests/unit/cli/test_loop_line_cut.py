"""A long reason in a loop line is cut at a word, with an ellipsis, never mid-word."""

from __future__ import annotations

from ctloop.cli.loop import _cut


def test_a_long_reason_is_cut_at_a_word_boundary() -> None:
    reason = "Input 'wind_gust' is declared FP64 but holds NoneType values such as None"
    assert _cut(reason, 40) == "Input 'wind_gust' is declared FP64 but …"
    assert _cut(reason, len(reason)) == reason and _cut("short", 40) == "short"
