"""The metadata tables, written once in SQLAlchemy Core for every backend.

Alembic migrations in ``ctloop/metadata/migrations`` create and change these
tables; this module is the shape the queries are written against. Portable
types only: ``JSON`` for dicts, string ids with explicit lengths (MySQL needs
them for indexes), datetimes stored as naive UTC with microseconds everywhere
(MySQL's ``DATETIME`` drops them unless told ``fsp=6``).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

__all__ = [
    "ID",
    "alias_events",
    "aliases",
    "artifacts",
    "controller_state",
    "definitions",
    "events",
    "leases",
    "log_segments",
    "log_writers",
    "metadata",
    "model_versions",
    "models",
    "runs",
    "steps",
]

ID = 64  # length of id columns: uuids, hex hashes, names


class _MicrosecondDatetime(sa.DATETIME):
    """MySQL's ``DATETIME(6)``: what ``sqlalchemy.dialects.mysql.DATETIME(fsp=6)`` compiles
    to (its compiler reads ``fsp``), without importing the MySQL dialect and its drivers
    for every store (~5 % of a cold ``ctloop serve`` on SQLite)."""

    fsp = 6


def Timestamp() -> sa.types.TypeEngine[datetime]:
    """A naive-UTC datetime with microseconds on every backend."""
    return sa.DateTime().with_variant(_MicrosecondDatetime(), "mysql", "mariadb")


def Json() -> sa.types.TypeEngine[object]:
    return sa.JSON()


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

runs = sa.Table(
    "ctloop_runs",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("pipeline", sa.String(255), nullable=False, index=True),
    sa.Column("pipeline_version", sa.String(ID), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("parameters", Json(), nullable=False),
    sa.Column("trigger", sa.String(64), nullable=False),
    sa.Column("trigger_info", Json(), nullable=False),
    sa.Column("executor", Json(), nullable=False),
    sa.Column("environment", Json(), nullable=False),
    sa.Column("tags", Json(), nullable=False),
    sa.Column("source", sa.Text(), nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False, index=True),
    sa.Column("started_at", Timestamp()),
    sa.Column("ended_at", Timestamp()),
    sa.Column("error", sa.Text()),
)

steps = sa.Table(
    "ctloop_steps",
    metadata,
    sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(ID), nullable=False, unique=True),
    sa.Column(
        "run_id", sa.String(ID), sa.ForeignKey("ctloop_runs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("component", sa.String(255), nullable=False),
    sa.Column("component_version", sa.String(ID), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cache_key", sa.String(ID), index=True),
    sa.Column("parameters", Json(), nullable=False),
    sa.Column("upstream", Json(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("started_at", Timestamp()),
    sa.Column("ended_at", Timestamp()),
    sa.Column("duration_s", sa.Float()),
    sa.Column("error", sa.Text()),
    sa.Column("traceback", sa.Text()),
    sa.Column("executor", Json(), nullable=False),
    sa.Column("cached_from", sa.String(ID)),
    sa.Column("outputs", Json(), nullable=False),
    sa.UniqueConstraint("run_id", "name"),
)

artifacts = sa.Table(
    "ctloop_artifacts",
    metadata,
    sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(ID), nullable=False, unique=True),
    sa.Column("type", sa.String(128), nullable=False, index=True),
    sa.Column("uri", sa.Text(), nullable=False),
    sa.Column("sha256", sa.String(ID), nullable=False, index=True),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("properties", Json(), nullable=False),
    sa.Column("producer_step_id", sa.String(ID), index=True),
    sa.Column("created_at", Timestamp(), nullable=False),
)

events = sa.Table(
    "ctloop_events",
    metadata,
    sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("step_id", sa.String(ID), nullable=False, index=True),
    sa.Column("artifact_id", sa.String(ID), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.UniqueConstraint("step_id", "artifact_id", "kind", "name"),
)

models = sa.Table(
    "ctloop_models",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("created_at", Timestamp(), nullable=False),
)

model_versions = sa.Table(
    "ctloop_model_versions",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("artifact_id", sa.String(ID), nullable=False),
    sa.Column("run_id", sa.String(ID)),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("tags", Json(), nullable=False),
    sa.Column("properties", Json(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
)

aliases = sa.Table(
    "ctloop_aliases",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer(), nullable=False),
)

alias_events = sa.Table(
    "ctloop_alias_events",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, index=True),
    sa.Column("alias", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer()),
    sa.Column("previous_version", sa.Integer()),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
)

definitions = sa.Table(
    "ctloop_definitions",
    metadata,
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("fingerprint", sa.String(ID), nullable=False),
    sa.Column("spec", Json(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("tags", Json(), nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
)

# -- controllers (migration 0003) ------------------------------------------------

controller_state = sa.Table(
    "ctloop_controller_state",
    metadata,
    sa.Column("scope", sa.String(255), primary_key=True),  # "triggers", "loop:NAME"
    sa.Column("key", sa.String(255), primary_key=True),  # a trigger or loop part; "" locks all
    sa.Column("value", Json(), nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
)

leases = sa.Table(
    "ctloop_leases",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("acquired_at", Timestamp(), nullable=False),
    sa.Column("expires_at", Timestamp(), nullable=False),
)
# -- the prediction log's index (segments on the artifact store's backend) ----------------

log_segments = sa.Table(
    "ctloop_log_segments",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("log", sa.String(ID), nullable=False),  # which log: a hash of its root URL
    sa.Column("kind", sa.String(16), nullable=False),  # "predictions" | "labels"
    sa.Column("path", sa.String(512), nullable=False, unique=True),  # key under the log's root
    sa.Column("model_name", sa.String(255)),  # None for label segments
    sa.Column("ts_min", Timestamp()),
    sa.Column("ts_max", Timestamp()),
    sa.Column("rows", sa.BigInteger(), nullable=False),
    sa.Column("bytes", sa.BigInteger(), nullable=False),
    sa.Column("writer", sa.String(ID), nullable=False),  # the writer, or "compactor"
    sa.Column("created_at", Timestamp(), nullable=False),
    sa.Index(None, "log", "kind", "model_name", "ts_max"),
)

log_writers = sa.Table(
    "ctloop_log_writers",
    metadata,
    sa.Column("log", sa.String(ID), primary_key=True),
    sa.Column("writer", sa.String(ID), primary_key=True),
    sa.Column("seq", sa.BigInteger(), nullable=False),  # last write-ahead chunk published
    sa.Column("updated_at", Timestamp(), nullable=False),
)

# The dashboard's run filters (migration 0005): filter column first, then creation time.
sa.Index("ix_ctloop_runs_status_created_at", runs.c.status, runs.c.created_at)
sa.Index("ix_ctloop_runs_pipeline_created_at", runs.c.pipeline, runs.c.created_at)
sa.Index("ix_ctloop_runs_trigger_created_at", runs.c.trigger, runs.c.created_at)
