"""runs.resume_step: a resumed run continues its parent (parent_id) after this optimizer step, so a
run's history is its lineage — the parent's points up to the step, then its own (issue 19).

Existing resumed runs (same config as their parent, started from a checkpoint) get the parent's last
step, where a stopped run checkpoints. A clone keeps NULL: it starts from step 0.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("resume_step", sa.Integer()))
    op.execute(
        "UPDATE runs SET resume_step = (SELECT p.step FROM runs AS p WHERE p.id = runs.parent_id) "
        "WHERE parent_id IS NOT NULL AND checkpoint_path IS NOT NULL "
        "AND config = (SELECT p.config FROM runs AS p WHERE p.id = runs.parent_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("resume_step")
