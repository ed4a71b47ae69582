"""SQLAlchemy engines for metadata URLs, with errors a person can act on.

``sqlite:///path`` (the default) runs in WAL mode with a busy timeout, so
several runs and readers can share one file; every write transaction starts
with ``BEGIN IMMEDIATE`` so two writers queue instead of failing on a stale
snapshot. ``postgresql://`` and ``mysql://`` without a driver mean psycopg 3
and PyMySQL, the drivers ctloop's extras install.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ctloop.core.errors import BackendUnavailable, ConfigError
from ctloop.core.plugins import require
from ctloop.metadata.rules import json_dumps

if TYPE_CHECKING:
    import sqlite3  # the driver itself is imported when a SQLite engine is made

__all__ = ["create_engine", "describe_url", "normalize_url"]

_DRIVERS = {
    # backend: (default driver, module, extra)
    "sqlite": ("pysqlite", "sqlite3", ""),
    "postgresql": ("psycopg", "psycopg", "postgres"),
    "mysql": ("pymysql", "pymysql", "mysql"),
    "mariadb": ("pymysql", "pymysql", "mysql"),
}
_EXAMPLES = (
    "sqlite:///path/to/metadata.db, postgresql+psycopg://user@host:5432/db "
    "or mysql+pymysql://user@host:3306/db"
)
CONNECT_TIMEOUT_S = 5
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> sa.URL:
    """Parse ``url``; fill in ctloop's driver when none is given."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"The metadata URL is empty. Set CTLOOP_METADATA_URL to {_EXAMPLES}.")
    try:
        parsed = make_url(url.strip())
    except ArgumentError:
        raise ConfigError(
            f"The metadata URL {url!r} is not a database URL. Use {_EXAMPLES}."
        ) from None
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise ConfigError(
            f"The metadata URL {describe_url(parsed)} names the database {backend!r}, "
            f"which ctloop does not support. Use {_EXAMPLES}."
        )
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=f"{backend}+{_DRIVERS[backend][0]}")
    return parsed


def describe_url(url: str | sa.URL) -> str:
    """The URL with its password hidden, for messages."""
    try:
        parsed = url if isinstance(url, sa.URL) else make_url(url)
    except ArgumentError:
        return repr(url)
    return parsed.render_as_string(hide_password=True)


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url``; the backend's driver is imported only now."""
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    _, module, extra = _DRIVERS[backend]
    if extra:
        require(module, extra, f"The metadata URL {describe_url(parsed)}")
    kwargs: dict[str, object] = {"json_serializer": json_dumps}
    if backend == "sqlite":
        _prepare_sqlite_path(parsed)
        # SQLite connections are cheap and local: never make a parallel step wait for one.
        if parsed.database not in (None, "", ":memory:"):
            kwargs["max_overflow"] = -1
    elif backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        kwargs["pool_pre_ping"] = True
    else:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, "charset": "utf8mb4"}
        kwargs["pool_pre_ping"] = True
        kwargs["pool_recycle"] = 3600
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ArgumentError, TypeError) as exc:
        raise ConfigError(
            f"Cannot use the metadata URL {describe_url(parsed)}: {exc}. Use {_EXAMPLES}."
        ) from None
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine


def _prepare_sqlite_path(url: sa.URL) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    path = Path(database).expanduser()
    if path.is_dir():
        raise ConfigError(
            f"The metadata URL {describe_url(url)} points at the folder {path}, not a file. "
            "Name a database file, e.g. sqlite:///" + str(path / "metadata.db")
        )
    from ctloop.core.paths import require_writable

    require_writable(path.parent, "folder of the metadata database")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the folder for the metadata database {path}: {exc.strerror}. "
            "Choose a writable location in CTLOOP_METADATA_URL."
        ) from None


def _configure_sqlite(engine: sa.Engine) -> None:
    """WAL, busy timeout, foreign keys, and transactions that pysqlite leaves to us."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself, so DDL is
        # transactional and writers can ask for IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            _use_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (persistent), retrying while another connection holds it.

    SQLite answers "database is locked" at once, without its busy handler, when
    several connections switch a new file's journal mode at the same moment (the
    concurrent first runs of a fresh project); a file already in WAL is left alone.
    """
    import sqlite3
    import time

    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def translate_connect_error(exc: Exception, url: str) -> Exception:
    """A ``BackendUnavailable``/``ConfigError`` saying why the database cannot be used."""
    shown = describe_url(url)
    orig = getattr(exc, "orig", exc)
    detail = " ".join(str(orig).split()) or type(orig).__name__
    if isinstance(exc, sa.exc.DatabaseError) and "file is not a database" in detail:
        return ConfigError(
            f"The metadata database {shown} is not a SQLite database (the file holds "
            "something else). Point CTLOOP_METADATA_URL at a new or ctloop database file."
        )
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return BackendUnavailable(
            f"Cannot connect to the metadata database {shown} ({detail.rstrip(' .')}). "
            "Check that the server runs, the host, port, user and database name are right, and "
            "CTLOOP_METADATA_URL (or 'metadata' in ctloop.toml) is set as intended."
        )
    return ConfigError(f"Cannot use the metadata database {shown}: {detail}.")
