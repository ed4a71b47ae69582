"""initial tables

Revision ID: 0001
Revises:
Create Date: 2026-11-22 04:56:16.518343
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ctloop_alias_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ctloop_alias_events")),
    )
    op.create_index(
        op.f("ix_ctloop_alias_events_name"), "ctloop_alias_events", ["name"], unique=False
    )
    op.create_table(
        "ctloop_aliases",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", "alias", name=op.f("pk_ctloop_aliases")),
    )
    op.create_table(
        "ctloop_artifacts",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("producer_step_id", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ctloop_artifacts")),
        sa.UniqueConstraint("id", name=op.f("uq_ctloop_artifacts_id")),
    )
    op.create_index(
        op.f("ix_ctloop_artifacts_producer_step_id"),
        "ctloop_artifacts",
        ["producer_step_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_ctloop_artifacts_sha256"), "ctloop_artifacts", ["sha256"], unique=False
    )
    op.create_index(op.f("ix_ctloop_artifacts_type"), "ctloop_artifacts", ["type"], unique=False)
    op.create_table(
        "ctloop_definitions",
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("kind", "name", "version", name=op.f("pk_ctloop_definitions")),
    )
    op.create_table(
        "ctloop_events",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("artifact_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ctloop_events")),
        sa.UniqueConstraint(
            "step_id",
            "artifact_id",
            "kind",
            "name",
            name=op.f("uq_ctloop_events_step_id_artifact_id_kind_name"),
        ),
    )
    op.create_index(
        op.f("ix_ctloop_events_artifact_id"), "ctloop_events", ["artifact_id"], unique=False
    )
    op.create_index(op.f("ix_ctloop_events_step_id"), "ctloop_events", ["step_id"], unique=False)
    op.create_table(
        "ctloop_model_versions",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("artifact_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_ctloop_model_versions")),
    )
    op.create_table(
        "ctloop_models",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ctloop_models")),
    )
    op.create_table(
        "ctloop_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("pipeline", sa.String(length=255), nullable=False),
        sa.Column("pipeline_version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("trigger_info", sa.JSON(), nullable=False),
        sa.Column("executor", sa.JSON(), nullable=False),
        sa.Column("environment", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "started_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "ended_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ctloop_runs")),
    )
    op.create_index(op.f("ix_ctloop_runs_created_at"), "ctloop_runs", ["created_at"], unique=False)
    op.create_index(op.f("ix_ctloop_runs_pipeline"), "ctloop_runs", ["pipeline"], unique=False)
    op.create_index(op.f("ix_ctloop_runs_status"), "ctloop_runs", ["status"], unique=False)
    op.create_table(
        "ctloop_steps",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("component", sa.String(length=255), nullable=False),
        sa.Column("component_version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("upstream", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "ended_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("executor", sa.JSON(), nullable=False),
        sa.Column("cached_from", sa.String(length=64), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["ctloop_runs.id"], name=op.f("fk_ctloop_steps_run_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ctloop_steps")),
        sa.UniqueConstraint("id", name=op.f("uq_ctloop_steps_id")),
        sa.UniqueConstraint("run_id", "name", name=op.f("uq_ctloop_steps_run_id_name")),
    )
    op.create_index(op.f("ix_ctloop_steps_cache_key"), "ctloop_steps", ["cache_key"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ctloop_steps_cache_key"), table_name="ctloop_steps")
    op.drop_table("ctloop_steps")
    op.drop_index(op.f("ix_ctloop_runs_status"), table_name="ctloop_runs")
    op.drop_index(op.f("ix_ctloop_runs_pipeline"), table_name="ctloop_runs")
    op.drop_index(op.f("ix_ctloop_runs_created_at"), table_name="ctloop_runs")
    op.drop_table("ctloop_runs")
    op.drop_table("ctloop_models")
    op.drop_table("ctloop_model_versions")
    op.drop_index(op.f("ix_ctloop_events_step_id"), table_name="ctloop_events")
    op.drop_index(op.f("ix_ctloop_events_artifact_id"), table_name="ctloop_events")
    op.drop_table("ctloop_events")
    op.drop_table("ctloop_definitions")
    op.drop_index(op.f("ix_ctloop_artifacts_type"), table_name="ctloop_artifacts")
    op.drop_index(op.f("ix_ctloop_artifacts_sha256"), table_name="ctloop_artifacts")
    op.drop_index(op.f("ix_ctloop_artifacts_producer_step_id"), table_name="ctloop_artifacts")
    op.drop_table("ctloop_artifacts")
    op.drop_table("ctloop_aliases")
    op.drop_index(op.f("ix_ctloop_alias_events_name"), table_name="ctloop_alias_events")
    op.drop_table("ctloop_alias_events")
