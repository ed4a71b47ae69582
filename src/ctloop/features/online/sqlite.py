"""SQLite online store: one table per view, one row per entity key, a kept-open connection.

Each view's table is ``(k TEXT PRIMARY KEY, ts INTEGER, v BLOB) WITHOUT ROWID``;
a materialization is one ``BEGIN IMMEDIATE ... COMMIT`` with ``executemany``
upserts, and WAL mode lets readers in other processes keep reading the old
values until the commit.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from ctloop.core.errors import ConfigError, StoreError
from ctloop.features.online.base import OnlineRecord, WriteBatch

__all__ = ["SqliteOnlineStore"]

_CHUNK = 500  # keys per IN (...) query


def _table(view: str) -> str:
    return '"fv_' + view.replace('"', '""') + '"'


def _path_from_url(url: str) -> str:
    if not url.startswith("sqlite:///"):
        raise ConfigError(
            f"A SQLite online store URL looks like sqlite:///path/online.db. Got {url!r}."
        )
    path = url[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        return ":memory:"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path


class SqliteOnlineStore:
    """Online features in a SQLite file (the zero-configuration default)."""

    def __init__(self, *, url: str) -> None:
        self.url = url
        self._path = _path_from_url(url)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._tables: set[str] = set()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                conn = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False, timeout=30
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS _ctloop_views "
                    "(view TEXT PRIMARY KEY, watermark INTEGER) WITHOUT ROWID"
                )
            except sqlite3.Error as exc:
                raise StoreError(
                    f"Cannot open the SQLite online store {self._path!r}: {exc}. Check the path "
                    "and its permissions."
                ) from exc
            self._conn = conn
        return self._conn

    def write(
        self, batches: Iterable[WriteBatch], *, watermarks: dict[str, int] | None = None
    ) -> int:
        with self._lock:
            conn = self._connect()
            written = 0
            try:
                conn.execute("BEGIN IMMEDIATE")
                for batch in batches:
                    table = _table(batch.view)
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {table} "
                        "(k TEXT PRIMARY KEY, ts INTEGER, v BLOB) WITHOUT ROWID"
                    )
                    conn.executemany(
                        f"INSERT INTO {table} (k, ts, v) VALUES (?, ?, ?) "
                        "ON CONFLICT(k) DO UPDATE SET ts = excluded.ts, v = excluded.v",
                        zip(batch.keys, batch.event_ts, batch.payloads, strict=True),
                    )
                    written += len(batch.keys)
                for view, mark in (watermarks or {}).items():
                    conn.execute(
                        "INSERT INTO _ctloop_views (view, watermark) VALUES (?, ?) "
                        "ON CONFLICT(view) DO UPDATE SET watermark = excluded.watermark",
                        (view, int(mark)),
                    )
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(
                        f"Writing to the SQLite online store {self._path!r} failed: {exc}. "
                        "Nothing was written."
                    ) from exc
                raise
            self._tables.clear()
            return written

    def read(self, view: str, keys: Sequence[str]) -> list[OnlineRecord | None]:
        if not keys:
            return []
        table = _table(view)
        with self._lock:
            conn = self._connect()
            try:
                if len(keys) == 1:
                    row = conn.execute(
                        f"SELECT ts, v FROM {table} WHERE k = ?", (keys[0],)
                    ).fetchone()
                    return [None if row is None else (row[0], row[1])]
                found: dict[str, OnlineRecord] = {}
                for start in range(0, len(keys), _CHUNK):
                    chunk = list(keys[start : start + _CHUNK])
                    marks = ",".join("?" * len(chunk))
                    for k, ts, v in conn.execute(
                        f"SELECT k, ts, v FROM {table} WHERE k IN ({marks})", chunk
                    ):
                        found[k] = (ts, v)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return [None] * len(keys)
                raise StoreError(f"Reading the SQLite online store failed: {exc}.") from exc
        return [found.get(k) for k in keys]

    def watermark(self, view: str) -> int | None:
        with self._lock:
            row = (
                self._connect()
                .execute("SELECT watermark FROM _ctloop_views WHERE view = ?", (view,))
                .fetchone()
            )
        return None if row is None else int(row[0])

    def drop_view(self, view: str) -> None:
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"DROP TABLE IF EXISTS {_table(view)}")
            conn.execute("DELETE FROM _ctloop_views WHERE view = ?", (view,))
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"SqliteOnlineStore(url={self.url!r})"
