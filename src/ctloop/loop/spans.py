"""A loop's spans: each landed file (or each period of a SQL source) is one span.

Spans are ordered by event time (their earliest ``event_time``), not by file
name or modification time, so a late file still replays in its place.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ctloop.core.errors import UserInputError
from ctloop.loop.declaration import LoopSpec, SqlSource

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BadSpan", "Span", "discover_spans", "scan_spans", "span_labels"]


@dataclass(frozen=True)
class Span:
    """One span: its name (the file's stem), file, event-time range and row count."""

    name: str
    path: str
    start: datetime
    end: datetime  # the latest event time in the span
    rows: int


@dataclass(frozen=True)
class BadSpan:
    """A landed file that is no span: unreadable, or without the ``event_time`` or ``label``
    column. The live controller quarantines it (and looks again once the file changes)."""

    name: str
    path: str
    key: str  # the loop key the file fails: "data", "event_time" or "label"
    problem: str  # one line naming the span, the key, what is wrong and the file
    size: int
    mtime_ns: int


def discover_spans(spec: LoopSpec, *, materialize_to: Path | None = None) -> list[Span]:
    """Every span of the loop, in event-time order.

    A file that cannot be read or lacks the ``event_time`` or ``label`` column is
    a one-line error naming the loop, the span and the key; nothing is run.
    """
    spans, bad = scan_spans(spec, materialize_to=materialize_to)
    if bad:
        raise UserInputError(f"Loop {spec.name!r}: {bad[0].problem}")
    return spans


def scan_spans(spec: LoopSpec, *, materialize_to: Path | None = None
               ) -> tuple[list[Span], list[BadSpan]]:
    """The loop's spans in event-time order, and the landed files that are no span (in
    file-name order), so one bad file does not hide the others."""
    if isinstance(spec.data, SqlSource):
        if materialize_to is None:
            raise UserInputError(f"Loop {spec.name!r}: a SQL source needs a folder for its "
                                 "spans.")
        return _sql_spans(spec, spec.data, materialize_to), []
    files = sorted(p for p in glob.glob(spec.data, recursive=True)
                   if Path(p).is_file() and not Path(p).name.startswith("."))
    found = [_file_span(spec, Path(p)) for p in files]
    spans = [s for s in found if isinstance(s, Span)]
    bad = [s for s in found if isinstance(s, BadSpan)]
    return sorted(spans, key=lambda s: (s.start, s.name)), bad


def span_labels(spec: LoopSpec, spans: list[Span]) -> pd.Series:
    """The label column of every span, in order (only that column is read): what the
    loop's task is read off when none is declared."""
    import pandas as pd
    import pyarrow.parquet as pq

    parts = []
    for span in spans:
        path = Path(span.path)
        if path.suffix == ".csv":
            parts.append(pd.read_csv(path, usecols=[spec.label])[spec.label])
        else:
            parts.append(pq.read_table(path, columns=[spec.label]).to_pandas()[spec.label])
    return pd.concat(parts, ignore_index=True) if parts else pd.Series([], dtype=float)


def _file_span(spec: LoopSpec, path: Path) -> Span | BadSpan:
    import pandas as pd
    import pyarrow.parquet as pq

    try:
        stat = path.stat()
        size, mtime_ns = stat.st_size, stat.st_mtime_ns
    except OSError:  # removed since the glob: the read below says so
        size, mtime_ns = -1, 0

    def bad(key: str, problem: str) -> BadSpan:
        return BadSpan(path.stem, str(path), key, problem, size, mtime_ns)

    try:
        if path.suffix == ".csv":
            head = pd.read_csv(path, nrows=0)
            columns = list(head.columns)
            times = pd.read_csv(path, usecols=[spec.event_time]) \
                if spec.event_time in columns else None
        else:
            schema = pq.read_schema(path)
            columns = list(schema.names)
            times = pq.read_table(path, columns=[spec.event_time]).to_pandas() \
                if spec.event_time in columns else None
    except Exception as exc:
        return bad("data", f"span {path.stem!r} cannot be read (key 'data'): "
                           f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]} "
                           f"(file {path})")
    for key, column in (("event_time", spec.event_time), ("label", spec.label)):
        if column not in columns:
            return bad(key, f"span {path.stem!r} has no {key} column {column!r} (key "
                            f"{key!r}); it has {columns[:12]} (file {path}). Fix the file "
                            f"or the loop's {key!r} key.")
    assert times is not None
    try:
        stamps = pd.to_datetime(times[spec.event_time], utc=True)
    except (TypeError, ValueError) as exc:
        return bad("event_time", f"span {path.stem!r}: column {spec.event_time!r} (key "
                                 f"'event_time') holds no timestamps: "
                                 f"{' '.join(str(exc).split())[:200]} (file {path})")
    if stamps.isna().all():
        return bad("event_time", f"span {path.stem!r}: column {spec.event_time!r} (key "
                                 f"'event_time') holds no timestamps (file {path}).")
    return Span(path.stem, str(path), stamps.min().to_pydatetime(),
                stamps.max().to_pydatetime(), len(stamps))


def _sql_spans(spec: LoopSpec, source: SqlSource, folder: Path) -> list[Span]:
    """Cut the query's rows into periods of ``source.span`` by the watermark column."""
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(source.url)
    try:
        frame = pd.read_sql(sa.text(source.query), engine)
    except Exception as exc:
        raise UserInputError(f"Loop {spec.name!r}: key 'data.query' failed: "
                             f"{' '.join(str(getattr(exc, 'orig', exc)).split())[:200]}"
                             ) from None
    finally:
        engine.dispose()
    for key, column in (("data.watermark", source.watermark), ("event_time", spec.event_time),
                        ("label", spec.label)):
        if column not in frame.columns:
            raise UserInputError(f"Loop {spec.name!r}: the query has no column {column!r} "
                                 f"(key {key!r}); it has {list(frame.columns)[:12]}.")
    mark = pd.to_datetime(frame[source.watermark], utc=True)
    origin = datetime(1970, 1, 1, tzinfo=UTC)
    period = ((mark - origin).dt.total_seconds() // source.span).astype("int64")
    folder.mkdir(parents=True, exist_ok=True)
    spans = []
    for period_key, part in frame.groupby(period, sort=True):
        start = origin + pd.Timedelta(seconds=int(period_key) * source.span)
        name = start.strftime("%Y-%m-%dT%H%M%S")
        path = folder / f"{name}.parquet"
        complete = mark.max() >= start + pd.Timedelta(seconds=source.span)
        if not complete:
            continue  # the newest period is still filling: not a span yet
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            part.to_parquet(tmp, index=False)
            tmp.replace(path)
        stamps = pd.to_datetime(part[spec.event_time], utc=True)
        spans.append(Span(name, str(path), stamps.min().to_pydatetime(),
                          stamps.max().to_pydatetime(), len(part)))
    return spans
