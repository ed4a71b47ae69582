"""The prediction log's index: which segment files exist, for which model and time range.

Segments are immutable parquet files on the artifact store's backend; the index
is two tables in a SQL database (the metadata database, or a SQLite file inside
a local log folder). Readers list segments here, never the bucket, so a reader
sees a segment only once it is complete, and exactly once: compaction swaps
many rows for one in a single transaction.

Two implementations of one :class:`LogIndex` (opened by
:func:`ctloop.requestlog.index.open_index`): SQLite's rows are read and written
with the standard library (:mod:`~ctloop.requestlog.index_sqlite`), so the request
log's writer process of a local log never imports SQLAlchemy (~17 MB of its memory,
issue 21); PostgreSQL and MySQL go through SQLAlchemy
(:mod:`~ctloop.requestlog.index_sql`), which also creates and migrates the tables
everywhere (one schema, :mod:`ctloop.metadata.schema`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["LogIndex", "SegmentInfo", "log_key"]

COMPACTOR = "compactor"


class LostRace(Exception):
    """Another compactor replaced some of the same segments first (rolls back)."""


_MODEL_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_model_folder(model: str | None) -> str:
    """A model name as a folder name: unsafe characters replaced, a hash added if so."""
    name = str(model)
    safe = _MODEL_SAFE.sub("_", name)[:80]
    if safe != name:
        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return safe


def log_key(root_url: str) -> str:
    """The index key of a log: a hash of its root URL (URLs can exceed a key's length)."""
    return hashlib.sha256(root_url.rstrip("/").encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SegmentInfo:
    """One indexed segment file."""

    path: str  # key under the log's root
    kind: str  # "predictions" | "labels"
    model_name: str | None
    ts_min: datetime | None
    ts_max: datetime | None
    rows: int
    bytes: int
    writer: str
    id: int = 0


def naive(value: datetime | None) -> datetime | None:
    """A datetime as the index stores it: naive UTC."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def aware(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


class LogIndex(Protocol):
    """Segments of one log (``key``) in the database at ``url``."""

    url: str
    key: str

    def published_seq(self, writer: str) -> int:
        """The last write-ahead chunk of ``writer`` already in a segment (-1: none)."""
        ...

    def publish(self, writer: str, seq: int, segments: Sequence[SegmentInfo]) -> None:
        """Index ``segments`` and mark ``writer``'s chunks up to ``seq`` published, atomically."""
        ...

    def add(self, segments: Sequence[SegmentInfo]) -> None:
        """Index segments written outside the write-ahead path (labels)."""
        ...

    def add_once(self, segments: Sequence[SegmentInfo]) -> bool:
        """Index ``segments`` unless one of their paths is indexed already (False then)."""
        ...

    def segments(self, kind: str = "predictions", *, model_name: str | None = None,
                 start: datetime | None = None,
                 end: datetime | None = None) -> list[SegmentInfo]:
        """Segments that may hold rows of ``model_name`` in ``[start, end)``, oldest first."""
        ...

    def models(self) -> list[str]: ...

    def replace(self, old: Sequence[SegmentInfo], new: SegmentInfo) -> bool:
        """Swap ``old`` for ``new`` in one transaction; False if another compactor won."""
        ...

    def drop(self, segments: Sequence[SegmentInfo]) -> int:
        """Remove segments from the index (retention); returns how many went."""
        ...

    def close(self) -> None: ...
