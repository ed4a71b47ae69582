"""The prediction log's index in a database SQLAlchemy drives: PostgreSQL, MySQL/MariaDB,
and the tables' creation or migration on SQLite (whose rows are then read and written by
:mod:`ctloop.requestlog.index_sqlite`, without SQLAlchemy).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa

from ctloop.core.errors import CtloopError, StoreError
from ctloop.metadata.engine import create_engine, describe_url, translate_connect_error
from ctloop.metadata.schema import log_segments, log_writers
from ctloop.requestlog.segments import LostRace, SegmentInfo, aware, naive

__all__ = ["SqlLogIndex", "create_tables", "upgrade_tables"]

_DEADLOCK_RETRIES = 5


def _deadlocked(exc: BaseException | None) -> bool:
    """The database chose this transaction as a deadlock's victim (MySQL 1213, a lock wait
    timeout 1205, PostgreSQL 40P01): nothing of it was kept, so it may simply run again."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    code = orig.args[0] if getattr(orig, "args", None) else None
    return code in (1205, 1213) or getattr(orig, "sqlstate", None) == "40P01"


def create_tables(url: str) -> None:
    """Create a local log's own index tables in its SQLite file (if missing)."""
    SqlLogIndex(url, "", create_tables=True).close()


def upgrade_tables(url: str) -> None:
    """Create or migrate the metadata database's tables, the index's among them."""
    SqlLogIndex(url, "").close()


class SqlLogIndex:
    """Segments of one log (``key``) in the database at ``url`` (a :class:`LogIndex`)."""

    def __init__(self, url: str, key: str, *, create_tables: bool = False) -> None:
        self.url = url
        self.key = key
        self.engine = create_engine(url)
        self._sqlite = self.engine.dialect.name == "sqlite"
        try:
            if create_tables:  # a local log's own SQLite index
                self._create_tables()
            else:
                from ctloop.metadata.migrate import upgrade

                upgrade(self.engine, url_for_humans=describe_url(url))
        except sa.exc.SQLAlchemyError as exc:
            self.engine.dispose()
            raise translate_connect_error(exc, url) from None
        except CtloopError:
            self.engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"SqlLogIndex({describe_url(self.url)!r})"

    def _create_tables(self) -> None:
        """Create the index tables in one IMMEDIATE transaction: two processes opening a
        fresh log at once would otherwise both read, then both try to write, and SQLite
        fails one of them at once ("database is locked") instead of letting it wait."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                log_segments.metadata.create_all(conn, tables=[log_segments, log_writers])

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _conn(self, *, write: bool) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as conn:
                if write and self._sqlite:
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        except CtloopError:
            raise
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise translate_connect_error(exc, self.url) from exc
        except sa.exc.SQLAlchemyError as exc:
            detail = " ".join(str(getattr(exc, "orig", exc)).split())
            raise StoreError(
                f"The prediction log index in {describe_url(self.url)} failed: {detail}."
            ) from exc

    # -- writers ------------------------------------------------------------

    def published_seq(self, writer: str) -> int:
        """The last write-ahead chunk of ``writer`` already in a segment (-1: none)."""
        with self._conn(write=False) as conn:
            seq = conn.execute(
                sa.select(log_writers.c.seq).where(
                    log_writers.c.log == self.key, log_writers.c.writer == writer
                )
            ).scalar()
        return -1 if seq is None else int(seq)

    def publish(self, writer: str, seq: int, segments: Sequence[SegmentInfo]) -> None:
        """Index ``segments`` and mark ``writer``'s chunks up to ``seq`` published, atomically.

        Two writers publishing at once can deadlock on MySQL (each holds a gap lock on the
        writers' index where the other inserts); the database rolls one back, which is
        then tried again, whole."""
        for attempt in range(_DEADLOCK_RETRIES + 1):
            try:
                return self._publish(writer, seq, segments)
            except CtloopError as exc:  # a deadlock is an OperationalError: "unavailable"
                if attempt == _DEADLOCK_RETRIES or not _deadlocked(exc.__cause__):
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _publish(self, writer: str, seq: int, segments: Sequence[SegmentInfo]) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        with self._conn(write=True) as conn:
            self._insert(conn, segments, now)
            done = conn.execute(
                sa.update(log_writers)
                .where(log_writers.c.log == self.key, log_writers.c.writer == writer)
                .values(seq=seq, updated_at=now)
            ).rowcount
            if not done:
                conn.execute(sa.insert(log_writers).values(
                    log=self.key, writer=writer, seq=seq, updated_at=now))

    def add(self, segments: Sequence[SegmentInfo]) -> None:
        """Index segments written outside the write-ahead path (labels)."""
        now = datetime.now(UTC).replace(tzinfo=None)
        with self._conn(write=True) as conn:
            self._insert(conn, segments, now)

    def add_once(self, segments: Sequence[SegmentInfo]) -> bool:
        """Index ``segments`` unless one of their paths is indexed already (False then):
        adopting the same file twice, even from two processes at once, adds it once."""
        now = datetime.now(UTC).replace(tzinfo=None)
        paths = [s.path for s in segments]
        try:
            with self._conn(write=True) as conn:
                known = conn.execute(sa.select(sa.func.count()).where(
                    log_segments.c.path.in_(paths))).scalar()
                if known:
                    return False
                self._insert(conn, segments, now)
        except StoreError as exc:
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                return False  # another process indexed them between our check and insert
            raise
        return True

    def _insert(self, conn: sa.Connection, segments: Sequence[SegmentInfo],
                now: datetime) -> None:
        if segments:
            conn.execute(sa.insert(log_segments), [
                {"log": self.key, "kind": s.kind, "path": s.path, "model_name": s.model_name,
                 "ts_min": naive(s.ts_min), "ts_max": naive(s.ts_max), "rows": s.rows,
                 "bytes": s.bytes, "writer": s.writer, "created_at": now}
                for s in segments
            ])

    # -- readers ------------------------------------------------------------

    def segments(
        self,
        kind: str = "predictions",
        *,
        model_name: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SegmentInfo]:
        """Segments that may hold rows of ``model_name`` in ``[start, end)``, oldest first."""
        c = log_segments.c
        query = sa.select(log_segments).where(c.log == self.key, c.kind == kind)
        if model_name is not None:
            query = query.where(c.model_name == model_name)
        if start is not None:
            query = query.where(c.ts_max >= naive(start))
        if end is not None:
            query = query.where(c.ts_min < naive(end))
        with self._conn(write=False) as conn:
            rows = conn.execute(query.order_by(c.ts_min, c.id)).all()
        return [
            SegmentInfo(path=r.path, kind=r.kind, model_name=r.model_name,
                        ts_min=aware(r.ts_min), ts_max=aware(r.ts_max), rows=int(r.rows),
                        bytes=int(r.bytes), writer=r.writer, id=int(r.id))
            for r in rows
        ]

    def models(self) -> list[str]:
        c = log_segments.c
        with self._conn(write=False) as conn:
            rows = conn.execute(
                sa.select(c.model_name).distinct()
                .where(c.log == self.key, c.kind == "predictions", c.model_name.is_not(None))
            ).scalars()
            return sorted(rows)

    # -- compaction and retention -------------------------------------------

    def replace(self, old: Sequence[SegmentInfo], new: SegmentInfo) -> bool:
        """Swap ``old`` for ``new`` in one transaction; False if another compactor won."""
        now = datetime.now(UTC).replace(tzinfo=None)
        ids = [s.id for s in old]
        try:
            with self._conn(write=True) as conn:
                gone = conn.execute(
                    sa.delete(log_segments).where(log_segments.c.id.in_(ids))
                ).rowcount
                if gone != len(ids):
                    raise LostRace
                self._insert(conn, [new], now)
        except LostRace:
            return False
        return True

    def drop(self, segments: Sequence[SegmentInfo]) -> int:
        """Remove segments from the index (retention); returns how many went."""
        if not segments:
            return 0
        with self._conn(write=True) as conn:
            return int(conn.execute(
                sa.delete(log_segments).where(log_segments.c.id.in_([s.id for s in segments]))
            ).rowcount)
