"""metric_rollups without its foreign key to runs: the per-row check was ~40 % of the rollup upsert.

Measured on the 2-core development machine (PostgreSQL 15, load about 1.1): bench/ingest.py's workload
through ``metrics.insert_points`` (batches of 50,000 points, ~1,750 rollup rows each), the rollups'
``INSERT … ON CONFLICT DO UPDATE`` took 21–38 ms per batch with the key (one trigger and one probe
of ``runs`` per row) and 9–17 ms without it, in interleaved runs. As for ``metric_points`` in
migration 0004, the key adds no guarantee that the write path does not already give: every upsert
is fenced by the run row (``fencing.check_attempt`` in the same transaction), and
``runs.delete_run`` deletes a run's rows in every table with a ``run_id`` before the run.

SQLite cannot drop a constraint: the table is rebuilt (Alembic's batch mode) from its definition
at 0005 (``WITHOUT ROWID``, which reflection would lose), its rows copied; the downgrade rebuilds it
with the key again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FK = "fk_metric_rollups_run_id_runs"
ID32 = sa.String(32).with_variant(sa.String(32, collation="C"), "postgresql")
KEY = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def _rollups(with_fk: bool) -> sa.Table:
    """metric_rollups as it stands before the step (for SQLite's rebuild), with the key to ``runs``
    (whose id is all the key needs of it) when ``with_fk``."""
    metadata = sa.MetaData()
    sa.Table("runs", metadata, sa.Column("id", ID32, primary_key=True))
    run_id = [sa.ForeignKey("runs.id", name=FK, ondelete="CASCADE")] if with_fk else []
    return sa.Table(
        "metric_rollups",
        metadata,
        sa.Column("run_id", ID32, *run_id, nullable=False),
        sa.Column("level", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("min_value", sa.Double()),
        sa.Column("min_step", sa.Integer()),
        sa.Column("max_value", sa.Double()),
        sa.Column("max_step", sa.Integer()),
        sa.Column("nan_step", sa.Integer()),
        sa.PrimaryKeyConstraint("run_id", "level", "key", "bucket", name="pk_metric_rollups"),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    with op.batch_alter_table("metric_rollups", copy_from=_rollups(with_fk=True)) as batch:
        batch.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("metric_rollups", copy_from=_rollups(with_fk=False)) as batch:
        batch.create_foreign_key(FK, "runs", ["run_id"], ["id"], ondelete="CASCADE")
