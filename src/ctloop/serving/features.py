"""Fill in the columns a model needs and a request did not carry, from the online store.

A feature ref ``view:feature`` fills the model column ``feature`` (the flights
models use short names) or ``view__feature`` (``full_names`` training sets).
Columns the request carries are never looked up: request values win.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from ctloop.core.errors import UserInputError
from ctloop.serving.errors import InvalidRequest

if TYPE_CHECKING:
    from ctloop.features import FeatureStore

__all__ = ["assemble", "column_of", "entity_keys"]


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


def assemble(
    frame: pd.DataFrame,
    needed: Sequence[str],
    refs: Sequence[str],
    store: FeatureStore | None,
    *,
    now: datetime | str | None = None,
) -> pd.DataFrame:
    """``frame`` plus the online values of every needed column it lacks.

    Raises ``InvalidRequest`` naming the columns neither the request nor the
    feature store can supply.
    """
    missing = [c for c in needed if c not in frame.columns]
    if not missing:
        return frame
    lookups: dict[str, str] = {}  # ref -> column
    if store is not None:
        for ref in refs:
            column = column_of(ref, missing)
            if column is not None:
                lookups[ref] = column
    unresolved = [c for c in missing if c not in lookups.values()]
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
    try:
        keys = entity_keys(store, list(lookups))
        absent = [k for k in keys if k not in frame.columns]
        if absent:
            raise InvalidRequest(
                f"The rows lack the entity key column(s) {absent} needed to look up "
                f"{sorted(lookups.values())} in the feature store; send the keys or the values."
            )
        entities = {k: frame[k].astype(object).where(frame[k].notna(), None).tolist() for k in keys}
        online = store.get_online_features(list(lookups), entities, now=now)  # type: ignore[union-attr]
    except InvalidRequest:
        raise
    except UserInputError as exc:
        raise InvalidRequest(f"Online feature lookup failed: {exc}") from exc
    looked_up = {column: online.values[ref] for ref, column in lookups.items()}
    added = pd.DataFrame(looked_up, index=frame.index)
    for column in added.columns:  # all-null lookups come back as object; let prepare() coerce
        if added[column].dtype == object and added[column].isna().all():
            added[column] = added[column].astype(float)
    return pd.concat([frame, added], axis=1)
