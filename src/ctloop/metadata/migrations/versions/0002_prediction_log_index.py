"""the prediction log's index: segments and writers

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 08:00:00
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _timestamp() -> sa.types.TypeEngine[datetime]:
    return (
        sa.DateTime()
        .with_variant(mysql.DATETIME(fsp=6), "mariadb")
        .with_variant(mysql.DATETIME(fsp=6), "mysql")
    )


def upgrade() -> None:
    op.create_table(
        "ctloop_log_segments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("log", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=True),
        sa.Column("ts_min", _timestamp(), nullable=True),
        sa.Column("ts_max", _timestamp(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("writer", sa.String(length=64), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ctloop_log_segments")),
        sa.UniqueConstraint("path", name=op.f("uq_ctloop_log_segments_path")),
    )
    op.create_index(
        op.f("ix_ctloop_log_segments_log_kind_model_name_ts_max"),
        "ctloop_log_segments",
        ["log", "kind", "model_name", "ts_max"],
        unique=False,
    )
    op.create_table(
        "ctloop_log_writers",
        sa.Column("log", sa.String(length=64), nullable=False),
        sa.Column("writer", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("log", "writer", name=op.f("pk_ctloop_log_writers")),
    )


def downgrade() -> None:
    op.drop_table("ctloop_log_writers")
    op.drop_index(
        op.f("ix_ctloop_log_segments_log_kind_model_name_ts_max"),
        table_name="ctloop_log_segments",
    )
    op.drop_table("ctloop_log_segments")
