"""Alembic environment: always run from ``ctloop.metadata.migrate`` with a live connection."""

from __future__ import annotations

from alembic import context

from ctloop.metadata.schema import metadata

VERSION_TABLE = "ctloop_alembic_version"

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    # SQLite cannot ALTER most things; write later migrations with op.batch_alter_table.
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
