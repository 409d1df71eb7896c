"""workers: what each worker process offers (host, queues, GPUs, CUDA, free memory), the run it holds
and when it was last seen — upserted by the worker itself (``backend.storage.workers``), read by the
Workers page and by the submit-time check that some live worker can take a run.

Revision ID: 0013
Revises: 0012 (0012_run_resume_step; the lead re-chains it if another lands first)
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", sa.Text(), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("cuda", sa.String(32), nullable=True),
        sa.Column("devices", sa.Text(), nullable=False),
        sa.Column("free_memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("training_run", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=False),
        sa.CheckConstraint("state IN ('idle', 'busy', 'stopped')", name="ck_workers_state"),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
    )


def downgrade() -> None:
    op.drop_table("workers")
