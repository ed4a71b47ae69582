"""Fill in the columns a model needs and a request did not carry, from the online store.

A feature ref ``view:feature`` fills the model column ``feature`` (the flights
models use short names) or ``view__feature`` (``full_names`` training sets).
Columns the request carries are never looked up: request values win. Rows
whose entity the store has never seen (or whose value expired) are reported
per column in ``Filled.missing``; the caller decides whether that is an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ctloop.core.errors import UserInputError
from ctloop.core.lazy import lazy_module
from ctloop.serving.errors import InvalidRequest

if TYPE_CHECKING:
    import pandas as pd

    from ctloop.features import FeatureStore
    from ctloop.features.results import OnlineFeatures
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["Filled", "assemble", "column_of", "entity_keys", "fill", "needs_lookup"]

Columns = Mapping[str, Sequence[Any] | np.ndarray]


@dataclass(frozen=True)
class Filled:
    """The request's columns plus the looked-up ones."""

    columns: Columns
    looked_up: tuple[str, ...] = ()  # model columns that came from the online store
    missing: dict[str, np.ndarray] = field(default_factory=dict)  # column -> rows not filled
    entity: tuple[str, ...] = ()  # join key columns (for label joins)


def column_of(ref: str, columns: Sequence[str]) -> str | None:
    """The model column a feature ref fills, or None when the model does not read it."""
    view, _, feature = ref.partition(":")
    for name in (feature, f"{view}__{feature}", ref):
        if name in columns:
            return name
    return None


def entity_keys(store: FeatureStore | None, refs: Sequence[str]) -> list[str]:
    """Join keys of the views behind ``refs`` (what identifies a row for labels)."""
    if store is None or not refs:
        return []
    keys: list[str] = []
    for view, _, _ in store.resolve(list(refs)):
        keys.extend(k for k in view.join_keys if k not in keys)
    return keys


def needs_lookup(columns: Columns, needed: Sequence[str]) -> bool:
    return any(c not in columns for c in needed)


def fill(
    columns: Columns,
    needed: Sequence[str],
    refs: Sequence[str],
    store: FeatureStore | None,
    *,
    now: datetime | str | None = None,
) -> Filled:
    """``columns`` plus the online values of every needed column they lack.

    Raises ``InvalidRequest`` naming the columns neither the request nor the
    feature store can supply.
    """
    lacking = [c for c in needed if c not in columns]
    if not lacking:
        return Filled(columns)
    lookups = _lookups(lacking, needed, refs, store)
    assert store is not None
    keys, online = _look_up(store, lookups, columns, now)
    out = dict(columns)
    missing: dict[str, np.ndarray] = {}
    for ref, column in lookups.items():
        out[column] = online.values[ref]
        unfilled = np.flatnonzero(np.asarray(online.statuses[ref], dtype=object) != "present")
        if len(unfilled):
            missing[column] = unfilled
    return Filled(out, tuple(lookups.values()), missing, tuple(keys))


def _lookups(lacking: list[str], needed: Sequence[str], refs: Sequence[str],
             store: FeatureStore | None) -> dict[str, str]:
    """The feature ref that supplies each lacking column (ref -> column); raises
    ``InvalidRequest`` naming the columns nothing supplies."""
    lookups: dict[str, str] = {}
    if store is not None:
        for ref in refs:
            column = column_of(ref, lacking)
            if column is not None:
                lookups[ref] = column
    unresolved = [c for c in lacking if c not in lookups.values()]
    if unresolved:
        hint = (
            " and no feature store is configured to look them up"
            if store is None or not refs
            else " and none of the model's feature refs supplies them"
        )
        raise InvalidRequest(
            f"The rows are missing column(s) {unresolved} that the model needs{hint}. "
            f"The model reads {list(needed)}."
        )
    return lookups


def _look_up(store: FeatureStore, lookups: dict[str, str], columns: Columns,
             now: datetime | str | None) -> tuple[list[str], OnlineFeatures]:
    """The entity keys and the online values of ``lookups`` for the rows' keys."""
    try:
        keys = entity_keys(store, list(lookups))
        absent = [k for k in keys if k not in columns]
        if absent:
            raise InvalidRequest(
                f"The rows lack the entity key column(s) {absent} needed to look up "
                f"{sorted(lookups.values())} in the feature store; send the keys or the values."
            )
        entities = {k: list(columns[k]) for k in keys}
        return keys, store.get_online_features(list(lookups), entities, now=now)
    except InvalidRequest:
        raise
    except UserInputError as exc:
        raise InvalidRequest(f"Online feature lookup failed: {exc}") from exc


def assemble(
    frame: pd.DataFrame,
    needed: Sequence[str],
    refs: Sequence[str],
    store: FeatureStore | None,
    *,
    now: datetime | str | None = None,
) -> pd.DataFrame:
    """``frame`` plus the online values of every needed column it lacks, as one frame.

    The frame-shaped twin of :func:`fill` for batch prediction and explanations,
    which work on DataFrames; values the store could not fill stay null.
    """
    if not needs_lookup({c: () for c in frame.columns}, needed):
        return frame
    columns: Columns = {
        str(c): frame[c].astype(object).where(frame[c].notna(), None).to_numpy()
        for c in frame.columns
    }
    filled = fill(columns, needed, refs, store, now=now)
    added = pd.DataFrame(
        {c: np.asarray(filled.columns[c]) for c in filled.looked_up}, index=frame.index
    )
    for column in added.columns:  # all-null lookups come back as object; let prepare() coerce
        if added[column].dtype == object and added[column].isna().all():
            added[column] = added[column].astype(float)
    return pd.concat([frame, added], axis=1)
