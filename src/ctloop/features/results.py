"""What the feature store returns: training sets, online features, materialization reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ctloop.core.jsontypes import JSONValue

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["MaterializationReport", "OnlineFeatures", "TrainingSet"]


@dataclass
class TrainingSet:
    """The entity frame with point-in-time feature values appended, in the frame's row order.

    ``feature_refs`` records which features built it, the lineage the training
    run stores on its dataset (``properties["feature_refs"]``).
    """

    entity_df: pd.DataFrame | pa.Table
    features: pa.Table
    feature_refs: list[str]
    columns: dict[str, str]  # output column -> feature ref

    def to_arrow(self) -> pa.Table:
        """Entity columns then feature columns, as one Arrow table."""
        import pyarrow as pa

        base = (
            self.entity_df
            if isinstance(self.entity_df, pa.Table)
            else pa.Table.from_pandas(self.entity_df, preserve_index=False)
        )
        for name in self.features.column_names:
            base = base.append_column(name, self.features.column(name))
        return base

    def to_pandas(self) -> pd.DataFrame:
        """Entity columns then feature columns, as one DataFrame."""
        import pandas as pd

        if isinstance(self.entity_df, pd.DataFrame):
            base = self.entity_df.reset_index(drop=True)
        else:
            base = self.entity_df.to_pandas()
        feats = self.features.to_pandas()
        joined: pd.DataFrame = pd.concat([base, feats], axis=1)
        return joined

    def __len__(self) -> int:
        return int(self.features.num_rows)


@dataclass(frozen=True)
class OnlineFeatures:
    """Online values for some entities: per feature ref, values, event times and statuses.

    Status is ``present``, ``missing`` (never materialized for that key) or
    ``expired`` (older than the view's ttl; the value is then null).
    """

    entities: dict[str, list[object]]  # join key -> the values asked for
    values: dict[str, list[object]]  # ref -> JSON scalars, or datetimes for timestamp features
    event_timestamps: dict[str, list[datetime | None]]
    statuses: dict[str, list[str]]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, the body the feature server answers with (datetimes as ISO text)."""

        def iso(ts: datetime | None) -> str | None:
            return None if ts is None else ts.isoformat()

        def plain(value: object) -> object:
            return value.isoformat() if isinstance(value, datetime) else value

        return {
            "entities": self.entities,
            "features": {ref: [plain(v) for v in vals] for ref, vals in self.values.items()},
            "event_timestamps": {
                ref: [iso(t) for t in ts] for ref, ts in self.event_timestamps.items()
            },
            "statuses": self.statuses,
        }

    def to_pandas(self) -> pd.DataFrame:
        """One row per entity, entity columns then feature values."""
        import pandas as pd

        return pd.DataFrame({**self.entities, **self.values})


@dataclass(frozen=True)
class MaterializationReport:
    """What one materialization wrote."""

    views: dict[str, int]  # view -> rows written
    start: datetime | None
    end: datetime
    seconds: float

    def to_dict(self) -> dict[str, JSONValue]:
        """JSON-ready, as ``ctloop features materialize --json`` prints it."""
        return {
            "views": self.views,
            "start": None if self.start is None else self.start.isoformat(),
            "end": self.end.isoformat(),
            "seconds": round(self.seconds, 3),
        }
