"""metric_rollups: min/max buckets of 64·2^level steps per series, levels 0..7, built from stored points.

Level 0 is computed from metric_points and each level from the one below (see
backend.storage.rollups for the row's meaning). Buckets are floor(step / width), written with
``%`` so that negative steps floor on both SQLite and PostgreSQL, whose integer division truncates.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID32 = sa.String(32).with_variant(sa.String(32, collation="C"), "postgresql")
KEY = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")
BASE_WIDTH = 64
TOP_LEVEL = 7
COLUMNS = "run_id, level, key, bucket, count, min_value, min_step, max_value, max_step, nan_step"

LEVEL_0 = f"""
INSERT INTO metric_rollups ({COLUMNS})
SELECT run_id, 0, key, bucket, COUNT(*),
       MIN(value), MIN(CASE WHEN lo = 1 AND value IS NOT NULL THEN step END),
       MAX(value), MIN(CASE WHEN hi = 1 AND value IS NOT NULL THEN step END),
       MIN(CASE WHEN value IS NULL THEN step END)
FROM (
    SELECT run_id, key, step, value, bucket,
           ROW_NUMBER() OVER (PARTITION BY run_id, key, bucket ORDER BY value IS NULL, value, step) AS lo,
           ROW_NUMBER() OVER (PARTITION BY run_id, key, bucket ORDER BY value IS NULL, value DESC, step) AS hi
    FROM (
        SELECT run_id, key, step, value,
               (step - ((step % {BASE_WIDTH}) + {BASE_WIDTH}) % {BASE_WIDTH}) / {BASE_WIDTH} AS bucket
        FROM metric_points
    ) AS bucketed
) AS ranked
GROUP BY run_id, key, bucket
"""

LEVEL_UP = f"""
INSERT INTO metric_rollups ({COLUMNS})
SELECT run_id, {{level}}, key, parent, SUM(count),
       MIN(min_value), MIN(CASE WHEN lo = 1 AND min_value IS NOT NULL THEN min_step END),
       MAX(max_value), MIN(CASE WHEN hi = 1 AND max_value IS NOT NULL THEN max_step END),
       MIN(nan_step)
FROM (
    SELECT run_id, key, count, min_value, min_step, max_value, max_step, nan_step, parent,
           ROW_NUMBER() OVER (
               PARTITION BY run_id, key, parent ORDER BY min_value IS NULL, min_value, min_step
           ) AS lo,
           ROW_NUMBER() OVER (
               PARTITION BY run_id, key, parent ORDER BY max_value IS NULL, max_value DESC, max_step
           ) AS hi
    FROM (
        SELECT run_id, key, count, min_value, min_step, max_value, max_step, nan_step,
               (bucket - ((bucket % 2) + 2) % 2) / 2 AS parent
        FROM metric_rollups
        WHERE level = {{level}} - 1
    ) AS children
) AS ranked
GROUP BY run_id, key, parent
"""


def upgrade() -> None:
    op.create_table(
        "metric_rollups",
        sa.Column("run_id", ID32, nullable=False),
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
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_metric_rollups_run_id_runs", ondelete="CASCADE"
        ),
        sqlite_with_rowid=False,
    )
    op.execute(sa.text(LEVEL_0))
    for level in range(1, TOP_LEVEL + 1):
        op.execute(sa.text(LEVEL_UP.format(level=level)))


def downgrade() -> None:
    op.drop_table("metric_rollups")
