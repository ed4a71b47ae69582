"""Errors specific to the feature store (all part of the ``CtloopError`` tree)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from ctloop.core.errors import NotFound, ValidationFailed

__all__ = ["SourceSchemaError", "feature_not_found"]


class SourceSchemaError(ValidationFailed):
    """A source's columns or types no longer match its view's definition."""

    headline = "source schema mismatch"


def feature_not_found(ref: str, known: Iterable[str], what: str = "feature") -> NotFound:
    """``NotFound`` for ``ref`` naming the closest known names."""
    known = sorted(set(known))
    close = difflib.get_close_matches(ref, known, n=3, cutoff=0.5)
    if not close and ":" in ref:
        tail = ref.split(":", 1)[1]
        close = [k for k in known if k.split(":", 1)[-1] == tail][:3]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = "" if close else " Run `ctloop features list` to see what exists."
    return NotFound(f"There is no {what} {ref!r}.{hint}{listing}")
