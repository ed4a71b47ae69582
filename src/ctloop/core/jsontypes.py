"""The one type of a JSON value, and small readers that narrow it.

Records keep free-form documents (a run's parameters, a model version's properties, a
definition's spec) as JSON columns. They are typed :data:`JSONValue`, a recursive alias
over ``Mapping`` and ``Sequence`` rather than ``dict`` and ``list``, chosen because:

* **the containers are read-only and covariant**: a writer's ``dict[str, float]`` or
  ``dict[str, list[str]]`` *is* a :data:`JSONObject`, with no copy and no ``cast``
  (``dict[str, JSONValue]`` is invariant and would refuse both), and a reader cannot
  mutate a frozen record's document in place by accident (copy it: ``{**doc, k: v}``);
* **the leaves are JSON's**, unlike ``Mapping[str, object]``: a ``datetime`` or a
  ``Path`` handed to a record is a type error where it is written, and a value read back
  is one of six known types, narrowed by ``isinstance`` (or the readers below) instead of
  ``Any`` leaking into every package that reads a record.

A reader narrows a value with ``isinstance`` or with :func:`as_object`,
:func:`as_list`, :func:`as_str`, :func:`as_number`: each returns the value when it has
the expected JSON type and an empty/absent value otherwise, which is what the ``x or {}``
idiom these replace did for a missing key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

__all__ = ["JSONArray", "JSONObject", "JSONScalar", "JSONValue", "as_list", "as_number",
           "as_object", "as_str", "as_strs"]

JSONScalar: TypeAlias = bool | int | float | str | None
JSONValue: TypeAlias = "JSONScalar | Sequence[JSONValue] | Mapping[str, JSONValue]"
"""A JSON document: what ``json.loads`` returns, read-only (see the module's docstring)."""
JSONObject: TypeAlias = Mapping[str, JSONValue]
JSONArray: TypeAlias = Sequence[JSONValue]

_EMPTY: JSONObject = {}


def as_object(value: object) -> JSONObject:
    """``value`` if it is a JSON object, else an empty one (a missing key, ``null``)."""
    return value if isinstance(value, Mapping) else _EMPTY


def as_list(value: object) -> JSONArray:
    """``value`` if it is a JSON array, else an empty one (a string is not an array)."""
    return value if isinstance(value, Sequence) and not isinstance(value, str | bytes) else ()


def as_str(value: object, default: str = "") -> str:
    """``value`` if it is a string, else ``default``."""
    return value if isinstance(value, str) else default


def as_number(value: object) -> float | None:
    """``value`` as a float if it is a JSON number (not a boolean), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def as_strs(value: object) -> list[str]:
    """The strings of a JSON array (other items skipped); ``[]`` when it is not one."""
    return [item for item in as_list(value) if isinstance(item, str)]
