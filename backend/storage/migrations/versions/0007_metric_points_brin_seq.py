"""PostgreSQL: metric_points' stream cursor ``seq`` in a BRIN index instead of a B-tree primary key.

``seq`` is allocated in ascending blocks (``bulk.allocate_seq``) and rows are appended in that
order, so it follows the table's physical order: a BRIN index (one min/max summary per 128 heap
pages) finds any seq range as well as the B-tree for the bounded reads of the live stream
(``metrics.points_after`` reads windows of seq), at almost no cost per inserted row. The B-tree was
about a third of the server's time per inserted point: in a raw binary COPY of bench/ingest.py's
rows on the 2-core development machine (PostgreSQL 15, three interleaved repeats), 259,000 rows/s
with it and 389,000 with the BRIN index instead. Uniqueness of ``seq`` comes from its allocation
(a counter row updated in the inserting transaction); (series_id, step) stays unique. The newest
seq is read from that counter (``metrics.last_seq``), not from the index.

Ranges not yet summarized are read by every window: ``autosummarize`` has autovacuum summarize a
range once inserts move past it (up to a minute later), and the writer summarizes after about one
range of points (``metrics.summarize_new_points``, ~0.3 µs per point), so a live poll reads at most
about one range (~16,000 points) that it does not need.

Known cost, kept: a range's min/max only widens. When pages freed by ``runs.delete_run`` and
vacuumed are refilled with new points, the range spans from its old seqs to its new ones and every
window in between reads it; the live head is not affected (the range being refilled is the only one
reaching it), a catch-up from far back is: on a 1M-point scratch table with half of it deleted,
vacuumed and refilled, a 1,000-seq window in the refilled span read 2,304 heap pages (42 ms). The
``int8_minmax_multi_ops`` class (up to 32 intervals per range) read 128 pages (5 ms) there, but its
summaries cost the writer ~1.3 µs per point (250,000 → 185,000 rows/s through DbSink).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PK = "pk_metric_points"
BRIN = "ix_metric_points_seq_brin"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_constraint(PK, "metric_points", type_="primary")
    op.create_index(
        BRIN,
        "metric_points",
        ["seq"],
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(BRIN, table_name="metric_points")
    op.create_primary_key(PK, "metric_points", ["seq"])
