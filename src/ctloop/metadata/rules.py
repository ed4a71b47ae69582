"""The rules every metadata backend applies the same way, written once.

The SQL store and the in-memory reference store (:mod:`ctloop.metadata.memory`)
both keep datetimes as aware UTC with microseconds, mask secrets in error texts,
store dicts as JSON would, and refuse the same names with the same messages; the
contract suites in :mod:`ctloop.testing.metadata_contract` hold them to it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TypeVar

from ctloop.core.errors import UserInputError
from ctloop.metadata.base import EVENT_KINDS, EventRecord

__all__ = [
    "DATETIME_FIELDS",
    "MIN_PREFIX",
    "TEXT_FIELDS",
    "check_event_kinds",
    "check_name",
    "from_db",
    "json_default",
    "json_round_trip",
    "normalized",
    "now",
    "to_db",
]

R = TypeVar("R")

MIN_PREFIX = 4  # the shortest id prefix a lookup accepts
DATETIME_FIELDS = frozenset({"created_at", "started_at", "ended_at"})
TEXT_FIELDS = frozenset({"error", "traceback"})  # may quote a URL or a secret: masked when stored


def now() -> datetime:
    return datetime.now(UTC)


def to_db(value: datetime | None) -> datetime | None:
    """Aware or naive datetime -> naive UTC, the form every backend stores."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def from_db(value: datetime | None) -> datetime | None:
    """A stored datetime as records hold it: aware UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def normalized(record: R) -> R:
    """The record as a read would return it: datetimes aware UTC with microseconds."""
    changes = {
        name: from_db(to_db(getattr(record, name)))
        for name in DATETIME_FIELDS
        if hasattr(record, name)
    }
    return dataclasses.replace(record, **changes)  # type: ignore[type-var]


def json_default(value: object) -> object:
    """Values that are not JSON: numpy scalars, paths, datetimes, sets."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars alike
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


def json_dumps(value: object) -> str:
    """JSON text of a record's dict field, with :func:`json_default` for the rest."""
    return json.dumps(value, default=json_default)


def json_round_trip(value: R) -> R:
    """The value as a JSON column gives it back (numpy -> lists and numbers, paths -> str)."""
    back: R = json.loads(json_dumps(value))
    return back


def check_name(value: str, what: str) -> None:
    """Names of models, aliases and definitions: non-empty, at most 255 characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise UserInputError(
            f"The {what} must be a non-empty string of at most 255 characters. Got {value!r}."
        )


def check_event_kinds(events: Iterable[EventRecord]) -> None:
    bad = [e.kind for e in events if e.kind not in EVENT_KINDS]
    if bad:
        raise UserInputError(
            f"Event kind must be one of {', '.join(EVENT_KINDS)}. Got {bad[0]!r}."
        )
