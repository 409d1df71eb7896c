"""metric_points without ``run_id`` and ``key``: a point names its series by ``series_id`` only.

Since migration 0005 every point's (run_id, key) is also its series row's; no index of metric_points
uses them any more, and readers join ``metric_series`` (a few rows per run). The two text columns were
about half of each stored row (32 + ~20 bytes of ~110) and two of the seven fields that COPY sends
and the server parses per point. In a raw binary COPY of bench/ingest.py's rows on the 2-core
development machine (PostgreSQL 15, three interleaved repeats) the table with the BRIN seq index of
0007 took 389,000 rows/s with the columns and 549,000 without; through DbSink (bench/ingest.py,
three interleaved pairs of two repeats) 219,000–249,000 with them and 228,000–302,000 without, the
server's CPU time per point 3.5–3.9 µs and 2.8–3.6 µs.

The downgrade adds the columns back and fills them from ``metric_series``, so nothing is lost either
way. SQLite rebuilds the table (Alembic's batch mode) keeping ``seq`` as its rowid.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID32 = sa.String(32).with_variant(sa.String(32, collation="C"), "postgresql")
KEY = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")
FILL = """
UPDATE metric_points SET
    run_id = (SELECT s.run_id FROM metric_series AS s WHERE s.id = metric_points.series_id),
    key = (SELECT s.key FROM metric_series AS s WHERE s.id = metric_points.series_id)
"""


def upgrade() -> None:
    with op.batch_alter_table("metric_points") as batch:
        batch.drop_column("run_id")
        batch.drop_column("key")


def downgrade() -> None:
    with op.batch_alter_table("metric_points") as batch:
        batch.add_column(sa.Column("run_id", ID32, nullable=True))
        batch.add_column(sa.Column("key", KEY, nullable=True))
    op.execute(FILL)
    with op.batch_alter_table("metric_points") as batch:
        batch.alter_column("run_id", existing_type=ID32, nullable=False)
        batch.alter_column("key", existing_type=KEY, nullable=False)
