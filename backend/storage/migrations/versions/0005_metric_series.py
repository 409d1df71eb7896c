"""metric_series: an integer id per series (run_id, key); metric_points unique on (series_id, step).

Why: on PostgreSQL the unique (run_id, key, step) index, two varchar keys of up to 32 + 200 bytes,
was the largest per-row cost of ingest left. Measured on the 2-core development machine (PostgreSQL
15, load < 1): bench/ingest.py's workload through DbSink (300,000 rows of 50 keys, a fresh database
each, 7 interleaved runs, medians) went from 104,502 to 132,064 rows/s, the server's CPU from 8.06
to 6.09 µs per row; on scratch tables (binary COPY of 300,000 rows, server µs per row) the heap with
its seq primary key and the (run_id, key, step) key took 7.8–8.9, with a (series_id, step) key
instead 4.2–5.6 (2.4–2.8 without either unique key). SQLite gains too (a smaller unique index).

The upgrade creates ``metric_series`` (one row per distinct (run_id, key) of the stored points),
adds ``metric_points.series_id`` and fills it from there, then swaps the unique constraint. On
SQLite, which cannot alter a column or drop a constraint, the second step rebuilds the table
(Alembic's batch mode) with the same columns, keys and rowid ``seq``, its rows copied. The
downgrade restores the (run_id, key, step) constraint, drops the column and the table; run_id and
key were kept on every point, so nothing is lost either way.

Revision ID: 0005
Revises: 0004
Create Date: 2025-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID32 = sa.String(32).with_variant(sa.String(32, collation="C"), "postgresql")
KEY = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")
OLD_UNIQUE = "uq_metric_points_run_id_key_step"
NEW_UNIQUE = "uq_metric_points_series_id_step"

FILL_SERIES = """
INSERT INTO metric_series (run_id, key)
SELECT DISTINCT run_id, key FROM metric_points ORDER BY run_id, key
"""
FILL_POINTS = """
UPDATE metric_points SET series_id = (
    SELECT s.id FROM metric_series AS s WHERE s.run_id = metric_points.run_id AND s.key = metric_points.key
)
"""


def upgrade() -> None:
    op.create_table(
        "metric_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", ID32, nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_metric_series"),
        sa.UniqueConstraint("run_id", "key", name="uq_metric_series_run_id_key"),
    )
    op.execute(sa.text(FILL_SERIES))
    with op.batch_alter_table("metric_points") as batch:
        batch.add_column(sa.Column("series_id", sa.Integer()))
    op.execute(sa.text(FILL_POINTS))
    with op.batch_alter_table("metric_points") as batch:
        batch.alter_column("series_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_constraint(OLD_UNIQUE, type_="unique")
        batch.create_unique_constraint(NEW_UNIQUE, ["series_id", "step"])


def downgrade() -> None:
    with op.batch_alter_table("metric_points") as batch:
        batch.drop_constraint(NEW_UNIQUE, type_="unique")
        batch.create_unique_constraint(OLD_UNIQUE, ["run_id", "key", "step"])
        batch.drop_column("series_id")
    op.drop_table("metric_series")
