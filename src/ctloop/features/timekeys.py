"""Times as microseconds and entity keys as text: the encodings offline and online share.

Training sets, materialization and online reads all turn event times into
microseconds since the epoch (UTC) and an entity's join-key values into one
key string, so a value written online is found by the same key it was built for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from ctloop.core.errors import UserInputError

__all__ = ["from_us", "key_string", "sql_ts", "to_us"]

_KEY_SEP = "\x1f"
_EPOCH = datetime(1970, 1, 1)


def to_us(moment: datetime | str | None) -> int | None:
    """Microseconds since the epoch (naive datetimes are UTC)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        try:
            when = datetime.fromisoformat(moment)
        except ValueError as exc:
            raise UserInputError(
                f"Cannot read {moment!r} as a time; use ISO format like 2013-06-01T00:00."
            ) from exc
    else:
        when = moment.to_pydatetime() if hasattr(moment, "to_pydatetime") else moment  # pandas
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int | None) -> datetime | None:
    """A naive-UTC datetime from microseconds since the epoch (exact, no float rounding)."""
    if us is None:
        return None
    return _EPOCH + timedelta(microseconds=int(us))


def sql_ts(us: int) -> str:
    """A DuckDB timestamp literal for microseconds since the epoch."""
    return f"make_timestamp({int(us)}::BIGINT)"


def key_string(values: Sequence[object]) -> str:
    """The online key of an entity: its join-key values as text, joined by U+001F."""
    parts = []
    for value in values:
        if isinstance(value, bool):
            parts.append("true" if value else "false")
        elif callable(item := getattr(value, "item", None)):  # a numpy scalar
            parts.append(str(item()))
        else:
            parts.append(str(value))
    return _KEY_SEP.join(parts)
