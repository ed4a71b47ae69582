"""controller state and leases

Revision ID: 0003
Revises: 0005
Create Date: 2026-12-01 08:00:00
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0005"
branch_labels = None
depends_on = None


def _timestamp() -> sa.types.TypeEngine[datetime]:
    return (sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"))


def upgrade() -> None:
    op.create_table(
        "ctloop_controller_state",
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_ctloop_controller_state")),
    )
    op.create_table(
        "ctloop_leases",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", _timestamp(), nullable=False),
        sa.Column("expires_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ctloop_leases")),
    )


def downgrade() -> None:
    op.drop_table("ctloop_leases")
    op.drop_table("ctloop_controller_state")
