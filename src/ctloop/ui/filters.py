"""Jinja filters: how times, durations, shares and numbers read on every page."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from jinja2 import Environment

__all__ = ["duration", "install", "number", "share", "when"]


def when(value: datetime | str | None) -> str:
    """``2013-06-01 14:05:09 UTC`` (stored times are UTC); ISO strings are parsed first."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        stamp = value
    offset = stamp.utcoffset()
    zone = " UTC" if offset is not None and offset.total_seconds() == 0 else ""
    return stamp.strftime("%Y-%m-%d %H:%M:%S") + zone


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def share(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def number(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "NaN"
        return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e6 else \
            f"{round(value, digits):g}"
    return str(value)


def compact(value: object, limit: int = 300) -> str:
    """A parameter value on one line: strings as they are, the rest as JSON."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def from_epoch(value: float | None) -> str:
    """Unix seconds as a UTC date (and time when not midnight): charts and datetime columns."""
    if value is None:
        return "-"
    stamp = datetime.fromtimestamp(float(value), UTC)
    return stamp.strftime("%Y-%m-%d" if stamp.time() == datetime.min.time() else
                          "%Y-%m-%d %H:%M")


def install(env: Environment) -> None:
    env.filters.update(when=when, duration=duration, share=share, number=number,
                       compact=compact, dtfromepoch=from_epoch,
                       short=lambda v: str(v or "")[:12])
