"""experiment_groups: one row per experiment group (status, run count, summary as JSON).

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiment_groups",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("experiment", sa.String(200), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("quick", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("seeds", sa.Text()),
        sa.Column("planned_runs", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("summary", sa.Text()),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiment_groups"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')", name="ck_experiment_groups_status"
        ),
    )
    op.create_index("ix_experiment_groups_created_at", "experiment_groups", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_experiment_groups_created_at", table_name="experiment_groups")
    op.drop_table("experiment_groups")
