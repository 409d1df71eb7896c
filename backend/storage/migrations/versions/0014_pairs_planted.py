"""pairs.planted: whether a training pair's chosen and rejected were swapped on purpose
(``data.label_noise``), the ground truth the outlier inspector is audited against (issue 20). NULL when
the run planted no noise; the trainer never reads it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pairs") as batch:
        batch.add_column(sa.Column("planted", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pairs") as batch:
        batch.drop_column("planted")
