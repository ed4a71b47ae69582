"""indexes for the dashboard's run filters

The runs list filters by status, pipeline or trigger and orders by creation
time; with the filter column first and ``created_at`` second, each filtered
page is an index range read that stops after one page, and its count reads
the index only.

Revision ID: 0005
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_ctloop_runs_status_created_at": ["status", "created_at"],
    "ix_ctloop_runs_pipeline_created_at": ["pipeline", "created_at"],
    "ix_ctloop_runs_trigger_created_at": ["trigger", "created_at"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "ctloop_runs", columns, unique=False)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="ctloop_runs")
