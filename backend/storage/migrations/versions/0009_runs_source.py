"""runs.source: what trained a run. NULL for a run of AlignScope's own engine (a native run), or the
external trainer that streamed it in through the ingest API (``trl``, ``python``; see
docs/decisions/0040-external-runs.md). External runs are never queued, resumed or cloned.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("source", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("source")
