"""What every part of the SQL metadata store shares: the engine, transactions, errors.

Each public method of the store is one transaction. Writes on SQLite start with
``BEGIN IMMEDIATE`` (writers queue on the busy timeout instead of failing); on
the server databases, version numbers and alias moves are serialised by a
``SELECT ... FOR UPDATE`` on the model's row. Driver errors never leak: a lost
connection becomes ``BackendUnavailable``, anything else ``StoreError``.
The concerns (runs, lineage, registry, definitions) live in ``sql_*.py`` modules
that each extend :class:`SqlCore`; ``sql.py`` joins them into one store.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa

from ctloop.core.errors import CtloopError, NotFound, StoreError, UserInputError
from ctloop.core.secrets import mask_secrets
from ctloop.metadata import schema as t
from ctloop.metadata.engine import create_engine, describe_url, translate_connect_error
from ctloop.metadata.migrate import upgrade
from ctloop.metadata.rules import (
    DATETIME_FIELDS,
    MIN_PREFIX,
    TEXT_FIELDS,
    from_db,
    normalized,
    now,
    to_db,
)

__all__ = ["SqlCore", "record_of", "row_values"]

R = TypeVar("R")

if TYPE_CHECKING:
    from sqlalchemy.sql.base import ReadOnlyColumnCollection

    # A table of schema.py. SQLAlchemy 2.1's ``Table`` defaults its column type to
    # ``Column[Any]``; naming ``object`` keeps explicit ``Any`` out of this package.
    SqlTable = sa.Table[ReadOnlyColumnCollection[str, sa.Column[object]]]
_RETRIES = 5


def column_values(values: dict[str, object]) -> dict[str, object]:
    """Field values as columns hold them: naive-UTC datetimes, enum values, masked texts."""
    out: dict[str, object] = {}
    for key, value in values.items():
        if key in DATETIME_FIELDS:
            value = to_db(value)  # type: ignore[arg-type]
        elif isinstance(value, StrEnum):
            value = value.value
        elif key in TEXT_FIELDS and isinstance(value, str):
            value = mask_secrets(value)
        out[key] = value
    return out


def row_values(record: object) -> dict[str, object]:
    """A record's columns (see :func:`column_values`)."""
    fields = dataclasses.fields(record)  # type: ignore[arg-type]
    return column_values({f.name: getattr(record, f.name) for f in fields})


Row = sa.Row[tuple[object, ...]]
"""A row of a query; columns are read by name (``row._mapping``), each narrowed there."""


def record_of(cls: type[R], row: Row, **overrides: object) -> R:
    """The record ``cls`` read from ``row`` (datetimes aware UTC), with ``overrides``."""
    mapping = row._mapping
    data: dict[str, object] = {
        f.name: mapping[f.name]
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name in mapping
    }
    for key in DATETIME_FIELDS & data.keys():
        value = data[key]
        assert value is None or isinstance(value, datetime)
        data[key] = from_db(value)
    data.update(overrides)
    return cls(**data)


class SqlCore:
    """The engine and the transaction helpers the concern mix-ins build on."""

    url: str
    _engine: sa.Engine
    _dialect: str

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self._engine = create_engine(url)
        self._dialect = self._engine.dialect.name
        self._statements: dict[tuple[str, tuple[str, ...]], sa.Executable] = {}
        try:
            if migrate:
                upgrade(self._engine, url_for_humans=describe_url(url))
            else:
                with self._engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            self._engine.dispose()
            raise translate_connect_error(exc, url) from None
        except CtloopError:
            self._engine.dispose()
            raise
        # A forked child (subprocess runner, servers) must not reuse the parent's sockets.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _dispose_in_child(ref))

    def close(self) -> None:
        self._engine.dispose()

    # transactions -----------------------------------------------------------
    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._guard(), self._engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self._guard(), self._engine.connect() as conn:
            if self._dialect == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except CtloopError:
            raise
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
                raise translate_connect_error(exc, self.url) from exc
            detail = " ".join(str(getattr(exc, "orig", exc)).split())
            if "connect" in detail.lower() or "server" in detail.lower():
                raise translate_connect_error(exc, self.url) from exc
            raise StoreError(
                f"The metadata database {describe_url(self.url)} failed: {detail}. "
                "Retry; if it persists, check the database server's logs."
            ) from exc
        except sa.exc.SQLAlchemyError as exc:
            detail = " ".join(str(getattr(exc, "orig", exc)).split())
            raise StoreError(
                f"The metadata database {describe_url(self.url)} failed: {detail}."
            ) from exc

    def _retry(self, fn: Callable[[], R], *, unique_races: bool = True) -> R:
        """Run a write transaction again when it lost a race (unique key or deadlock)."""
        for attempt in range(_RETRIES):
            try:
                return fn()
            except StoreError as exc:
                if not _lost_race(exc.__cause__, unique_races) or attempt == _RETRIES - 1:
                    raise
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")

    # statements ---------------------------------------------------------------
    # The dialects' own insert statements are imported where used: the PostgreSQL
    # package alone is ~0.1 s of a cold ``ctloop serve`` on SQLite.
    def _insert_ignore(self, table: SqlTable) -> sa.Insert:
        if self._dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table).on_conflict_do_nothing()
        if self._dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects import mysql

        return mysql.insert(table).prefix_with("IGNORE")

    def _upsert(self, table: SqlTable, keys: tuple[str, ...]) -> sa.Executable:
        """Insert a row or, on a clash on ``keys``, replace it: one statement, built once."""
        cached = self._statements.get((table.name, keys))
        if cached is None:
            cached = self._statements[(table.name, keys)] = self._build_upsert(table, keys)
        return cached

    def _build_upsert(self, table: SqlTable, keys: tuple[str, ...]) -> sa.Executable:
        columns = [c.name for c in table.columns if not c.primary_key or c.name in keys]
        if self._dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects import mysql

            mysql_insert = mysql.insert(table)
            upsert: sa.Executable = mysql_insert.on_duplicate_key_update(
                {k: mysql_insert.inserted[k] for k in columns}
            )
            return upsert
        if self._dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            pg_insert = postgresql.insert(table)
            return pg_insert.on_conflict_do_update(
                index_elements=list(keys), set_={k: pg_insert.excluded[k] for k in columns}
            )
        from sqlalchemy.dialects import sqlite

        insert = sqlite.insert(table)
        upsert = insert.on_conflict_do_update(
            index_elements=list(keys), set_={k: insert.excluded[k] for k in columns}
        )
        return upsert

    def _by_prefix(self, conn: sa.Connection, table: SqlTable, key: str, what: str) -> Row:
        key = str(key).strip()
        row = conn.execute(BY_ID[table.name], {"id": key}).first()
        if row is not None:
            return row
        if len(key) < MIN_PREFIX:
            raise NotFound(
                f"No {what} with id {key!r}. Give the full id or at least "
                f"{MIN_PREFIX} characters of it."
            )
        escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = conn.execute(
            sa.select(table).where(table.c.id.like(escaped + "%", escape="\\")).limit(2)
        ).all()
        if not rows:
            raise NotFound(f"No {what} with id {key!r}. List them with `ctloop {what}s list`.")
        if len(rows) > 1:
            raise UserInputError(
                f"The id prefix {key!r} matches several {what}s. Give more characters."
            )
        return rows[0]

    def _insert_new(self, table: SqlTable, record: R, what: str) -> R:
        """Insert a record with a new id (stamped now if undated); a taken id is an error."""
        if record.created_at is None:  # type: ignore[attr-defined]
            record = dataclasses.replace(record, created_at=now())  # type: ignore[type-var]
        try:
            with self._write() as conn:
                conn.execute(sa.insert(table).values(row_values(record)))
        except StoreError as exc:
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise StoreError(
                    f"{what} with id {record.id!r} already exists."  # type: ignore[attr-defined]
                ) from exc
            raise
        return normalized(record)


BY_ID = {
    table.name: sa.select(table).where(table.c.id == sa.bindparam("id"))
    for table in (t.runs, t.steps, t.artifacts)
}


def _lost_race(exc: BaseException | None, unique_races: bool = True) -> bool:
    """A unique-key collision or a deadlock/serialization failure: safe to rerun."""
    if isinstance(exc, sa.exc.IntegrityError):
        return unique_races
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in ("40001", "40P01"):  # psycopg
        return True
    args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] in (1205, 1213)  # MySQL lock wait timeout, deadlock


def _dispose_in_child(ref: weakref.ref[SqlCore]) -> None:
    store = ref()
    if store is not None:
        store._engine.dispose(close=False)
