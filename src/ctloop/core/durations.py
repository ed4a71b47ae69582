"""One grammar for durations: ``90s``, ``15m``, ``6h``, ``2d``, ``1w``.

Quality rules, feature TTLs and windows, trigger cooldowns and loop windows all read
durations; they share this grammar so a text that works in one works in all. Callers keep
their own messages (they name the setting) and their own rules for bare numbers.
"""

from __future__ import annotations

import re

__all__ = ["UNIT_SECONDS", "duration_seconds", "duration_text"]

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def duration_seconds(text: object, *, unit_required: bool = True) -> float | None:
    """Seconds in a duration text, or None when ``text`` is not one.

    ``unit_required=False`` also reads a bare number in text (``"3600"``) as seconds.
    """
    match = _DURATION.match(str(text))
    if not match or (unit_required and not match.group(2)):
        return None
    return float(match.group(1)) * UNIT_SECONDS.get(match.group(2), 1)


def duration_text(seconds: float) -> str:
    """The shortest text of this grammar for ``seconds`` (``86400`` -> ``"1d"``)."""
    for unit in ("w", "d", "h", "m"):
        size = UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
