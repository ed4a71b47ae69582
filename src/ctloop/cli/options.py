"""Parsing of repeatable ``KEY=VALUE`` options (``--param``, ``--tag``, ``--entity``)."""

from __future__ import annotations

from ctloop.core.errors import UserInputError

__all__ = ["key_values"]


def key_values(pairs: list[str] | None, option: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a pair without ``=`` or key is an error."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"The {option} value {pair!r} must look like KEY=VALUE.")
        out[key.strip()] = value
    return out
