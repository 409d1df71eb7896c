"""Initial schema: runs, metric_points, pair_records, pairs, evaluations, judgments, stream_counters.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID32 = sa.String(32).with_variant(sa.String(32, collation="C"), "postgresql")
KEY = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")
PAIR_ID = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")
STATUSES = "'queued', 'running', 'succeeded', 'failed', 'stopped'"


def _run_id() -> sa.Column:
    return sa.Column("run_id", ID32, nullable=False)


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["runs.id"], name=f"fk_{table}_run_id_runs", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", ID32, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("preset", sa.String(200)),
        sa.Column("group_name", sa.String(200)),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("stop_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("progress", sa.Double(), nullable=False, server_default="0"),
        sa.Column("message", sa.Text()),
        sa.Column("step", sa.Integer()),
        sa.Column("total_steps", sa.Integer()),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("started_at", sa.Double()),
        sa.Column("finished_at", sa.Double()),
        sa.Column("heartbeat_at", sa.Double()),
        sa.Column("parent_id", ID32),
        sa.Column("checkpoint_path", sa.Text()),
        sa.Column("environment", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_runs_status"),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["runs.id"], name="fk_runs_parent_id_runs", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])

    op.create_table(
        "metric_points",
        sa.Column("seq", SEQ, nullable=False, autoincrement=False),
        _run_id(),
        sa.Column("key", KEY, nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("value", sa.Double()),
        sa.Column("wall_time", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_metric_points"),
        _run_fk("metric_points"),
        sa.UniqueConstraint("run_id", "key", "step", name="uq_metric_points_run_id_key_step"),
    )

    op.create_table(
        "pair_records",
        sa.Column("seq", SEQ, nullable=False, autoincrement=False),
        _run_id(),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("micro_batch", sa.Integer(), nullable=False),
        sa.Column("pair_id", PAIR_ID, nullable=False),
        sa.Column("policy_chosen_logp", sa.Double()),
        sa.Column("policy_rejected_logp", sa.Double()),
        sa.Column("reference_chosen_logp", sa.Double()),
        sa.Column("reference_rejected_logp", sa.Double()),
        sa.Column("chosen_tokens", sa.Integer(), nullable=False),
        sa.Column("rejected_tokens", sa.Integer(), nullable=False),
        sa.Column("discrepancy", sa.Double()),
        sa.Column("filter_weight", sa.Double()),
        sa.Column("kept", sa.Boolean(), nullable=False),
        sa.Column("beta", sa.Double()),
        sa.Column("m0", sa.Double()),
        sa.Column("sigma", sa.Double()),
        sa.PrimaryKeyConstraint("seq", name="pk_pair_records"),
        _run_fk("pair_records"),
        sa.UniqueConstraint(
            "run_id", "step", "micro_batch", "pair_id", name="uq_pair_records_run_id_step_micro_batch_pair_id"
        ),
    )

    op.create_table(
        "pairs",
        _run_id(),
        sa.Column("pair_id", PAIR_ID, nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("chosen", sa.Text(), nullable=False),
        sa.Column("rejected", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "pair_id", name="pk_pairs"),
        _run_fk("pairs"),
    )

    op.create_table(
        "evaluations",
        _run_id(),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("temperature", sa.Double(), nullable=False),
        sa.Column("judge", sa.String(200), nullable=False),
        sa.Column("opponent", sa.String(200), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("ties", sa.Integer(), nullable=False),
        sa.Column("losses", sa.Integer(), nullable=False),
        sa.Column("win_rate", sa.Double()),
        sa.Column("ci_low", sa.Double()),
        sa.Column("ci_high", sa.Double()),
        sa.PrimaryKeyConstraint("run_id", "step", "temperature", "judge", "opponent", name="pk_evaluations"),
        _run_fk("evaluations"),
    )

    op.create_table(
        "judgments",
        _run_id(),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("temperature", sa.Double(), nullable=False),
        sa.Column("judge", sa.String(200), nullable=False),
        sa.Column("opponent", sa.String(200), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("opponent_response", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("judge_output", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "run_id", "step", "temperature", "judge", "opponent", "item", name="pk_judgments"
        ),
        sa.CheckConstraint("verdict IN ('win', 'tie', 'loss')", name="ck_judgments_verdict"),
        _run_fk("judgments"),
    )

    counters = op.create_table(
        "stream_counters",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_stream_counters"),
    )
    op.bulk_insert(counters, [{"name": "metric_points", "value": 0}, {"name": "pair_records", "value": 0}])


def downgrade() -> None:
    for table in ("stream_counters", "judgments", "evaluations", "pairs", "pair_records", "metric_points"):
        op.drop_table(table)
    op.drop_index("ix_runs_created_at", table_name="runs")
    op.drop_index("ix_runs_status", table_name="runs")
    op.drop_table("runs")
