"""A throw-away metadata database on each backend, for tests that share servers.

``temporary_metadata_url("postgres")`` creates a fresh schema (PostgreSQL) or
database (MariaDB/MySQL) with a unique name, yields a URL pointing into it and
drops it afterwards, so tests running at the same time never see each other's
records. ``"sqlite"`` gives a file in a temporary folder.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ctloop.testing.services import MYSQL_URL, POSTGRES_URL, require_service, unique_name

__all__ = ["METADATA_BACKENDS", "temporary_metadata_url"]

METADATA_BACKENDS = ("sqlite", "postgres", "mysql")


@contextmanager
def temporary_metadata_url(backend: str, folder: Path | None = None) -> Iterator[str]:
    """A URL of an empty metadata database on ``backend`` (sqlite, postgres, mysql)."""
    if backend == "sqlite":
        if folder is not None:
            yield f"sqlite:///{Path(folder) / (unique_name('md') + '.db')}"
            return
        with tempfile.TemporaryDirectory(prefix="ctloop-md-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'metadata.db'}"
        return
    if backend not in ("postgres", "mysql"):
        raise ValueError(f"Unknown backend {backend!r}; use one of {METADATA_BACKENDS}.")
    require_service(backend)
    import sqlalchemy as sa

    name = unique_name("ctmd")
    admin = sa.create_engine(POSTGRES_URL if backend == "postgres" else MYSQL_URL)
    create, drop = (
        (f"CREATE SCHEMA {name}", f"DROP SCHEMA {name} CASCADE") if backend == "postgres"
        else (f"CREATE DATABASE {name}", f"DROP DATABASE {name}")
    )
    with admin.begin() as conn:
        conn.execute(sa.text(create))
    try:
        if backend == "postgres":
            yield f"{POSTGRES_URL}?options=-csearch_path%3D{name}"
        else:
            yield MYSQL_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(drop))
        admin.dispose()
