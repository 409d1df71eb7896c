"""metric_points without its foreign key to runs: the per-row check was the largest cost of ingest.

Measured with bench/ingest.py (DbSink, 300,000 rows, batches of 20,000): on PostgreSQL the check
(one trigger and one index probe of ``runs`` per inserted row) took about 45 % of the server's time
per batch; on SQLite about 10 %. The key adds no guarantee that the write path does not already
give: every insert is fenced (``fencing.check_attempt`` reads, and on PostgreSQL share-locks, the
run row in the inserting transaction, so the run exists until it commits), and
``runs.delete_run`` deletes a run's rows in every table with a ``run_id`` before the run.

SQLite cannot drop a constraint: the table is rebuilt (Alembic's batch mode) with the same columns,
keys and rowid ``seq``, its rows copied.

Revision ID: 0004
Revises: 0003
Create Date: 2025-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FK = "fk_metric_points_run_id_runs"


def upgrade() -> None:
    with op.batch_alter_table("metric_points") as batch:
        batch.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("metric_points") as batch:
        batch.create_foreign_key(FK, "runs", ["run_id"], ["id"], ondelete="CASCADE")
