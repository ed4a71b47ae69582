"""Prediction logs from before segments, adopted so an upgrade loses no row or label.

Until the segmented log, a log folder held day-partitioned parts and label
parts, read by globbing::

    date=2013-07-01/part-<ns>-<rand>.parquet    predictions (f_<feature>, e_<entity>)
    labels/part-<ns>-<rand>.parquet              request_id, label, labelled_at

The segmented log reads only what its index lists, so such files would be
silently invisible. The first time a local log is opened, each old part is
rewritten as a segment of the current layout (missing columns as nulls, one
segment per model), indexed, and only then deleted. Every step can be repeated:
the segment's key follows from the part's name, the index refuses a path twice,
so a crash or two processes adopting at once leave each row exactly once.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ctloop.requestlog.segments import LogIndex, SegmentInfo, safe_model_folder
from ctloop.requestlog.tables import base_types

if TYPE_CHECKING:
    import pyarrow as pa


class SegmentWriter(Protocol):
    """What adoption needs of a log: its local folder, its index, and segment uploads."""

    root: Path | None
    index: LogIndex

    def upload(self, table: pa.Table, key: str, kind: str, model: str | None,
               writer: str) -> SegmentInfo: ...

__all__ = ["SegmentWriter", "adopt_legacy_parts", "conform_predictions"]

log = logging.getLogger("ctloop.monitoring")

PREDICTIONS_GLOB = "date=*/part-*.parquet"
LABELS_GLOB = "labels/part-*.parquet"
WRITER = "legacy"


def adopt_legacy_parts(target: SegmentWriter) -> int:
    """Turn the old parts under a local log's folder into indexed segments; rows adopted."""
    root = target.root
    if root is None:
        return 0
    parts = _listed(root, PREDICTIONS_GLOB)
    labels = _listed(root, LABELS_GLOB)
    rows = 0
    for part in parts:
        rows += _adopt(target, part, kind="predictions")
    for part in labels:
        rows += _adopt(target, part, kind="labels")
    if rows:
        log.info("adopted %d rows of %d old prediction log parts in %s", rows,
                 len(parts) + len(labels), root)
    return rows


def _listed(root: Path, pattern: str) -> list[Path]:
    """The old parts matching ``pattern``, sorted. A process adopting them at the same time
    removes each day folder it empties, and Python 3.11's glob raises when a folder goes
    between being listed and being read: list again (each retry follows a folder removed
    for good, so it ends)."""
    while True:
        try:
            return sorted(root.glob(pattern))
        except FileNotFoundError:
            continue


def _adopt(target: SegmentWriter, part: Path, *, kind: str) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(part)
    except FileNotFoundError:  # a process opening the log at the same time adopted it
        return 0
    stem = f"{part.parent.name}-{part.stem}" if kind == "predictions" else part.stem
    if kind == "labels":
        segments = [target.upload(_conform_labels(table), f"labels/legacy-{stem}.parquet",
                                  "labels", None, WRITER)]
    else:
        table = conform_predictions(table)
        segments = []
        for model in pc.unique(table["model_name"]).to_pylist():
            rows = table.filter(pc.equal(table["model_name"], model))
            key = f"predictions/model={safe_model_folder(model)}/legacy-{stem}.parquet"
            segments.append(target.upload(rows, key, kind, model, WRITER))
    adopted = target.index.add_once(segments)
    part.unlink(missing_ok=True)  # its rows are indexed now (by us or by a racing process)
    if kind == "predictions":
        with contextlib.suppress(OSError):  # not empty yet, or removed by a racing process
            part.parent.rmdir()  # the emptied day folder
    return table.num_rows if adopted else 0


def conform_predictions(table: pa.Table) -> pa.Table:
    """An old part with the current base columns: the missing ones as nulls, typed."""
    import pyarrow as pa

    types = base_types()
    for name, kind in types.items():
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, kind))
        elif table.schema.field(name).type != kind:
            i = table.column_names.index(name)
            table = table.set_column(i, name, table[name].cast(kind))
    return table


def _conform_labels(table: pa.Table) -> pa.Table:
    import pyarrow as pa

    if "row_id" not in table.column_names:
        table = table.add_column(1, "row_id", pa.nulls(table.num_rows, pa.string()))
    return table
