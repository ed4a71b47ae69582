"""Bring a metadata database to the schema this ctloop expects, with Alembic.

``upgrade`` runs on every open but costs one query when the database is
already current (the common case): only a missing or older version takes the
migration lock and runs Alembic. The lock makes concurrent first opens safe:
SQLite takes ``BEGIN IMMEDIATE``, PostgreSQL a transaction-level advisory lock,
MySQL a named lock (its DDL is not transactional).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ctloop.core.errors import ConfigError

if TYPE_CHECKING:  # Alembic is imported only to migrate: a current database never needs it
    from alembic.config import Config

__all__ = ["HEAD", "current_revision", "head_revision", "upgrade"]

# The newest migration; a test checks it equals the scripts' head, so the fast
# path does not have to parse the migration scripts on every open.
HEAD = "0003"
VERSION_TABLE = "ctloop_alembic_version"
_SCRIPTS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x6374_6C6F_6F70  # "ctloop"
_MYSQL_LOCK = "ctloop_metadata_migration"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic config pointing at ctloop's migration scripts."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The head revision according to the migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database is at, None for an empty database.

    Read with one query, as Alembic's own context reads it, without importing Alembic
    (half a second of every command's start)."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    if len(rows) > 1:  # several heads: Alembic would refuse; let it say so in the slow path
        return ",".join(sorted(str(r[0]) for r in rows))
    return str(rows[0][0]) if rows else None


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    try:
        return script.get_revision(revision) is not None
    except Exception:
        return False


def upgrade(engine: sa.Engine, *, url_for_humans: str) -> None:
    """Create or migrate the ctloop tables; no-op when already at ``HEAD``."""
    with engine.connect() as conn:
        revision = current_revision(conn)
    if revision == HEAD:
        return
    if revision is not None and not _known(revision):
        raise ConfigError(
            f"The metadata database {url_for_humans} is at schema revision {revision!r}, "
            "which this ctloop does not know: it was written by a newer ctloop. "
            "Upgrade ctloop (pip install -U ctloop) or point CTLOOP_METADATA_URL elsewhere."
        )
    dialect = engine.dialect.name
    if dialect == "sqlite":
        with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            _run(conn)
    elif dialect == "postgresql":
        with engine.connect() as conn, conn.begin():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            _run(conn)
    elif dialect in ("mysql", "mariadb"):
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT GET_LOCK(:n, 120)"), {"n": _MYSQL_LOCK})
            conn.commit()  # the named lock belongs to the session and outlives this
            try:
                with conn.begin():
                    _run(conn)
            finally:
                conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": _MYSQL_LOCK})
                conn.commit()
    else:
        with engine.begin() as conn:
            _run(conn)


def _run(conn: sa.Connection) -> None:
    # Alembic re-reads the version inside the lock, so a loser of the race
    # finds the schema current and does nothing.
    from alembic import command

    command.upgrade(alembic_config(conn), "head")
