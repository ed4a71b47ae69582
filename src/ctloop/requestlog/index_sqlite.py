"""The prediction log's index in a SQLite file, with the standard library's driver.

Why not SQLAlchemy, as everywhere else: the request log's writer process of a local
log publishes a segment a second and does nothing else with a database; SQLAlchemy
(and the metadata schema) cost it ~17 MB of its memory (issue 21). The rows are read
and written here with eight plain statements over the tables SQLAlchemy creates
(:func:`ctloop.requestlog.index_sql.create_tables`) or migrates (the metadata
database), so one schema stays the only one; SQLAlchemy is imported only when a
table is missing or the metadata database has to be migrated.

What the SQLAlchemy engine does for SQLite (:mod:`ctloop.metadata.engine`) is done
the same way: a 30 s busy timeout, ``synchronous = NORMAL`` on a file in WAL mode,
``BEGIN IMMEDIATE`` for every write, and datetimes stored as SQLAlchemy's SQLite
dialect stores them (naive UTC text with microseconds), so both read each other's rows.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

from ctloop.core.errors import BackendUnavailable, ConfigError, CtloopError, StoreError
from ctloop.requestlog.segments import LostRace, SegmentInfo, aware, naive

__all__ = ["SqliteLogIndex", "sqlite_path"]

_SEGMENTS = "ctloop_log_segments"
_WRITERS = "ctloop_log_writers"
_COLUMNS = "id, path, kind, model_name, ts_min, ts_max, rows, bytes, writer"
_BUSY_TIMEOUT_S = 30.0  # ctloop.metadata.engine.SQLITE_BUSY_TIMEOUT_MS


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///path`` URL; None for any other URL, or a SQLite URL this
    module leaves to SQLAlchemy (in memory, ``file:`` URIs, query parameters)."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme not in ("sqlite", "sqlite+pysqlite") or "?" in rest or "#" in rest:
        return None
    path = unquote(rest)
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    return path


def _text(value: datetime | None) -> str | None:
    """A datetime as SQLAlchemy's SQLite ``DATETIME`` stores it."""
    d = naive(value)
    if d is None:
        return None
    return (f"{d.year:04d}-{d.month:02d}-{d.day:02d} "
            f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{d.microsecond:06d}")


def _datetime(value: str | None) -> datetime | None:
    return None if value is None else aware(datetime.fromisoformat(value))


def _now() -> str | None:
    return _text(datetime.now(UTC))


def connect_error(exc: sqlite3.Error, url: str) -> CtloopError:
    """What :func:`ctloop.metadata.engine.translate_connect_error` says of the same error."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, sqlite3.DatabaseError) and "file is not a database" in detail:
        return ConfigError(
            f"The metadata database {url} is not a SQLite database (the file holds "
            "something else). Point CTLOOP_METADATA_URL at a new or ctloop database file."
        )
    if isinstance(exc, sqlite3.OperationalError | sqlite3.InterfaceError):
        return BackendUnavailable(
            f"Cannot connect to the metadata database {url} ({detail.rstrip(' .')}). "
            "Check that the server runs, the host, port, user and database name are right, and "
            "CTLOOP_METADATA_URL (or 'metadata' in ctloop.toml) is set as intended."
        )
    return ConfigError(f"Cannot use the metadata database {url}: {detail}.")


class SqliteLogIndex:
    """Segments of one log (``key``) in the SQLite file at ``path`` (a ``LogIndex``).

    Connections are kept for reuse, one per thread at a time, as SQLAlchemy's pool did.
    """

    def __init__(self, url: str, path: str, key: str, *, create_tables: bool = False,
                 prepared: bool = False) -> None:
        self.url = url
        self.path = path
        self.key = key
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if create_tables:  # a local log's own index: its tables, made once
            if not self._has_tables():
                from ctloop.requestlog.index_sql import create_tables as create

                create(url)
        elif not prepared:  # the metadata database, at the current schema
            from ctloop.requestlog.index_sql import upgrade_tables

            upgrade_tables(url)

    def __repr__(self) -> str:
        return f"SqliteLogIndex({self.url!r})"

    def _has_tables(self) -> bool:
        if not Path(self.path).is_file():
            return False  # made by SQLAlchemy, with its checks of the folder and WAL mode
        try:
            with self._conn(write=False) as conn:
                found = {row[0] for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
                    (_SEGMENTS, _WRITERS))}
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.Error):
                raise connect_error(exc.__cause__, self.url) from None
            raise
        return found == {_SEGMENTS, _WRITERS}

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    @contextmanager
    def _conn(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction (``BEGIN IMMEDIATE`` to write), committed unless it raised."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        try:
            if conn is None:
                conn = self._connect()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise connect_error(exc, self.url) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                conn.close()
                conn = None
            if isinstance(exc, sqlite3.OperationalError | sqlite3.InterfaceError):
                raise connect_error(exc, self.url) from exc
            if isinstance(exc, sqlite3.Error):
                detail = " ".join(str(exc).split())
                raise StoreError(
                    f"The prediction log index in {self.url} failed: {detail}.") from exc
            raise
        finally:
            if conn is not None:
                with self._lock:
                    self._idle.append(conn)

    # -- writers ------------------------------------------------------------

    def published_seq(self, writer: str) -> int:
        """The last write-ahead chunk of ``writer`` already in a segment (-1: none)."""
        with self._conn(write=False) as conn:
            row = conn.execute(f"SELECT seq FROM {_WRITERS} WHERE log = ? AND writer = ?",
                               (self.key, writer)).fetchone()
        return -1 if row is None else int(row[0])

    def publish(self, writer: str, seq: int, segments: Sequence[SegmentInfo]) -> None:
        """Index ``segments`` and mark ``writer``'s chunks up to ``seq`` published, atomically."""
        now = _now()
        with self._conn(write=True) as conn:
            self._insert(conn, segments, now)
            done = conn.execute(
                f"UPDATE {_WRITERS} SET seq = ?, updated_at = ? WHERE log = ? AND writer = ?",
                (seq, now, self.key, writer)).rowcount
            if not done:
                conn.execute(
                    f"INSERT INTO {_WRITERS} (log, writer, seq, updated_at) VALUES (?, ?, ?, ?)",
                    (self.key, writer, seq, now))

    def add(self, segments: Sequence[SegmentInfo]) -> None:
        """Index segments written outside the write-ahead path (labels)."""
        with self._conn(write=True) as conn:
            self._insert(conn, segments, _now())

    def add_once(self, segments: Sequence[SegmentInfo]) -> bool:
        """Index ``segments`` unless one of their paths is indexed already (False then):
        adopting the same file twice, even from two processes at once, adds it once."""
        paths = [s.path for s in segments]
        try:
            with self._conn(write=True) as conn:
                known = conn.execute(
                    f"SELECT count(*) FROM {_SEGMENTS} WHERE path IN "
                    f"({', '.join('?' * len(paths))})", paths).fetchone()[0]
                if known:
                    return False
                self._insert(conn, segments, _now())
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                return False  # another process indexed them between our check and insert
            raise
        return True

    def _insert(self, conn: sqlite3.Connection, segments: Sequence[SegmentInfo],
                now: str | None) -> None:
        conn.executemany(
            f"INSERT INTO {_SEGMENTS} (log, kind, path, model_name, ts_min, ts_max, rows, "
            "bytes, writer, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(self.key, s.kind, s.path, s.model_name, _text(s.ts_min), _text(s.ts_max),
              s.rows, s.bytes, s.writer, now) for s in segments])

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
        where = ["log = ?", "kind = ?"]
        params: list[object] = [self.key, kind]
        if model_name is not None:
            where.append("model_name = ?")
            params.append(model_name)
        if start is not None:
            where.append("ts_max >= ?")
            params.append(_text(start))
        if end is not None:
            where.append("ts_min < ?")
            params.append(_text(end))
        with self._conn(write=False) as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM {_SEGMENTS} WHERE {' AND '.join(where)} "
                "ORDER BY ts_min, id", params).fetchall()
        return [
            SegmentInfo(path=path, kind=kind_, model_name=model, ts_min=_datetime(ts_min),
                        ts_max=_datetime(ts_max), rows=int(n), bytes=int(size), writer=writer,
                        id=int(id_))
            for id_, path, kind_, model, ts_min, ts_max, n, size, writer in rows
        ]

    def models(self) -> list[str]:
        with self._conn(write=False) as conn:
            rows = conn.execute(
                f"SELECT DISTINCT model_name FROM {_SEGMENTS} WHERE log = ? "
                "AND kind = 'predictions' AND model_name IS NOT NULL", (self.key,)).fetchall()
        return sorted(row[0] for row in rows)

    # -- compaction and retention -------------------------------------------

    def replace(self, old: Sequence[SegmentInfo], new: SegmentInfo) -> bool:
        """Swap ``old`` for ``new`` in one transaction; False if another compactor won."""
        ids = [s.id for s in old]
        try:
            with self._conn(write=True) as conn:
                gone = conn.execute(
                    f"DELETE FROM {_SEGMENTS} WHERE id IN ({', '.join('?' * len(ids))})",
                    ids).rowcount
                if gone != len(ids):
                    raise LostRace
                self._insert(conn, [new], _now())
        except LostRace:
            return False
        return True

    def drop(self, segments: Sequence[SegmentInfo]) -> int:
        """Remove segments from the index (retention); returns how many went."""
        if not segments:
            return 0
        ids = [s.id for s in segments]
        with self._conn(write=True) as conn:
            return int(conn.execute(
                f"DELETE FROM {_SEGMENTS} WHERE id IN ({', '.join('?' * len(ids))})",
                ids).rowcount)
