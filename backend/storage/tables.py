"""SQLAlchemy Core tables (DESIGN §3). The Alembic migrations build exactly this schema.

Conventions:
- times are UTC unix seconds (float) everywhere, like ``MetricPoint.wall_time``;
- a float column holds NULL for NaN (SQLite cannot store NaN, so both backends use NULL; ±inf are
  stored as they are); the storage functions translate NaN ↔ NULL at their edges;
- ``seq`` on metric_points and pair_records is the live-stream cursor: allocated in blocks from
  ``stream_counters`` inside the inserting transaction (see ``bulk.allocate_seq``), so it is strictly
  increasing in commit order and never reused, on SQLite and PostgreSQL alike. metric_points'
  ``seq`` is SQLite's rowid; on PostgreSQL it has no B-tree but a BRIN index (migration 0007: it
  follows the physical order of the appended rows, and the B-tree was about a third of the server's
  time per inserted point), so its reads are bounded seq windows (``metrics.points_after``) and
  the newest seq comes from the counter (``metrics.last_seq``);
- ``metric_rollups`` summarizes each series in min/max buckets of 64·2^level steps (see
  ``backend.storage.rollups``); ``metrics.insert_points`` keeps it in step with metric_points;
- ``metric_series`` gives each series (run_id, key) an integer id; ``metric_points`` is unique on
  (series_id, step) (migration 0005: an integer key is cheaper to maintain per inserted row than
  (run_id, key, step) text) and names its series by that id alone (migration 0008: the run id and
  key text were half of each row). Reads of one series or of one run's series go through its ids
  (``metrics.series_ids``), and readers that want run ids and keys join ``metric_series``;
- ``metric_series.run_id`` and ``metric_rollups.run_id`` have no foreign key (migrations 0004 and
  0006: its per-row check was the largest cost of ingest, then ~40 % of the rollups' upsert), nor
  has ``metric_points.series_id``: inserts are fenced by the run row (``fencing.check_attempt``) and
  ``runs.delete_run`` deletes a run's points, then its series, then its rows of every other table,
  before the run;
- ``sessions`` holds one row per browser login (the hash of its random cookie, its CSRF token,
  its expiry); logout deletes it (``backend.storage.sessions``, migration 0011);
- ``workers`` is one row per worker process, upserted by the worker itself every few seconds
  (``backend.storage.workers``): what it offers and the run it holds; ``last_seen`` says whether it
  is alive (migration 0013);
- ``experiment_groups`` is one row per experiment group (its runs are the ``runs`` rows whose
  ``group_name`` is its id), with the group's summary as JSON (``backend.storage.experiment_groups``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "stopped")
FINAL_STATUSES = ("succeeded", "failed", "stopped")
GROUP_STATUSES = ("queued", "running", "succeeded", "failed")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Seq = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid


def ident(length: int) -> String:
    """Identifier text (run ids, metric keys, pair ids): byte-order "C" collation on PostgreSQL,
    which makes the hot unique indexes cheaper to maintain than a locale collation."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def _run_fk() -> ForeignKey:
    return ForeignKey("runs.id", ondelete="CASCADE")


runs = Table(
    "runs",
    metadata,
    Column("id", ident(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("config", Text, nullable=False),
    Column("preset", String(200)),
    Column("group_name", String(200)),
    Column("attempt", Integer, nullable=False),
    Column("error", Text),
    Column("stop_requested", Boolean, nullable=False, server_default=false()),
    Column("progress", Double, nullable=False, server_default="0"),
    Column("message", Text),
    Column("step", Integer),
    Column("total_steps", Integer),
    Column("created_at", Double, nullable=False),
    Column("started_at", Double),
    Column("finished_at", Double),
    Column("heartbeat_at", Double),
    Column("parent_id", ident(32), ForeignKey("runs.id", ondelete="SET NULL")),
    Column("resume_step", Integer),  # a resume: continues parent_id after this step (see lineage.py)
    Column("checkpoint_path", Text),
    Column("environment", Text),
    Column("source", String(32)),  # NULL: a native run; else the external trainer (migration 0009)
    CheckConstraint(f"status IN ({', '.join(repr(s) for s in RUN_STATUSES)})", name="status"),
    Index(None, "status"),
    Index(None, "created_at"),
)

metric_series = Table(
    "metric_series",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ident(32), nullable=False),  # no foreign key: see the module docstring
    Column("key", ident(200), nullable=False),
    UniqueConstraint("run_id", "key"),
)

metric_points = Table(
    "metric_points",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=False),
    Column("step", Integer, nullable=False),
    Column("value", Double),
    Column("wall_time", Double, nullable=False),
    Column("series_id", Integer, nullable=False),  # metric_series.id; no foreign key (see above)
    UniqueConstraint("series_id", "step"),
)
# PostgreSQL only (migration 0007 also drops the primary-key constraint there; see the docstring).
metric_points_seq_brin = Index(
    "ix_metric_points_seq_brin",
    metric_points.c.seq,
    postgresql_using="brin",
    postgresql_with={"autosummarize": "on"},
    info={"dialects": ("postgresql",)},
)
metric_points_seq_brin.ddl_if(dialect="postgresql")

metric_rollups = Table(
    "metric_rollups",
    metadata,
    Column("run_id", ident(32), primary_key=True),  # no foreign key: see the module docstring
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("key", ident(200), primary_key=True),
    Column("bucket", Integer, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("min_value", Double),
    Column("min_step", Integer),
    Column("max_value", Double),
    Column("max_step", Integer),
    Column("nan_step", Integer),
    sqlite_with_rowid=False,
)

pair_records = Table(
    "pair_records",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=False),
    Column("run_id", ident(32), _run_fk(), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("step", Integer, nullable=False),
    Column("micro_batch", Integer, nullable=False),
    Column("pair_id", ident(128), nullable=False),
    Column("policy_chosen_logp", Double),
    Column("policy_rejected_logp", Double),
    Column("reference_chosen_logp", Double),
    Column("reference_rejected_logp", Double),
    Column("chosen_tokens", Integer, nullable=False),
    Column("rejected_tokens", Integer, nullable=False),
    Column("discrepancy", Double),
    Column("filter_weight", Double),
    Column("kept", Boolean, nullable=False),
    Column("beta", Double),
    Column("m0", Double),
    Column("sigma", Double),
    UniqueConstraint("run_id", "step", "micro_batch", "pair_id"),
)

pairs = Table(
    "pairs",
    metadata,
    Column("run_id", ident(32), _run_fk(), primary_key=True),
    Column("pair_id", ident(128), primary_key=True),
    Column("prompt", Text, nullable=False),
    Column("chosen", Text, nullable=False),
    Column("rejected", Text, nullable=False),
    Column("planted", Boolean),  # data.label_noise's ground truth (migration 0014); NULL: none planted
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("run_id", ident(32), _run_fk(), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("temperature", Double, primary_key=True),
    Column("judge", String(200), primary_key=True),
    Column("opponent", String(200), primary_key=True),
    Column("wins", Integer, nullable=False),
    Column("ties", Integer, nullable=False),
    Column("losses", Integer, nullable=False),
    Column("win_rate", Double),
    Column("ci_low", Double),
    Column("ci_high", Double),
)

judgments = Table(
    "judgments",
    metadata,
    Column("run_id", ident(32), _run_fk(), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("temperature", Double, primary_key=True),
    Column("judge", String(200), primary_key=True),
    Column("opponent", String(200), primary_key=True),
    Column("item", Integer, primary_key=True),
    Column("prompt", Text, nullable=False),
    Column("response", Text, nullable=False),
    Column("opponent_response", Text, nullable=False),
    Column("verdict", String(8), nullable=False),
    Column("judge_output", Text, nullable=False),
    CheckConstraint("verdict IN ('win', 'tie', 'loss')", name="verdict"),
)

stream_counters = Table(
    "stream_counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

experiment_groups = Table(
    "experiment_groups",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("experiment", String(200), nullable=False),
    Column("title", String(300), nullable=False),
    Column("status", String(16), nullable=False),
    Column("quick", Boolean, nullable=False, server_default=false()),
    Column("seeds", Text),
    Column("planned_runs", Integer, nullable=False),
    Column("message", Text),
    Column("error", Text),
    Column("summary", Text),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    CheckConstraint(f"status IN ({', '.join(repr(s) for s in GROUP_STATUSES)})", name="status"),
    Index(None, "created_at"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 of the cookie value; never the value
    Column("csrf", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Index(None, "expires_at"),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),  # host:pid
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", Text, nullable=False),  # JSON list of queue names
    Column("gpus", Integer, nullable=False),  # CUDA devices visible to its trainers
    Column("cuda", String(32)),  # torch's CUDA version when CUDA works there, else NULL
    Column("devices", Text, nullable=False),  # JSON list of {name, total_bytes, free_bytes}
    Column("free_memory_bytes", BigInteger),  # host RAM available
    # the run it trains now; not "run_id": runs.delete_run deletes every table's rows by run_id, and a
    # worker's row is not the run's (no foreign key either: a deleted run is simply named no more)
    Column("training_run", String(32)),
    Column("state", String(16), nullable=False),
    Column("started_at", Double, nullable=False),
    Column("last_seen", Double, nullable=False),
    CheckConstraint("state IN ('idle', 'busy', 'stopped')", name="state"),
)


def in_schema_of(dialect: str, schema_object: object) -> bool:
    """Whether ``schema_object`` (a table, index or constraint of ``metadata``) exists in a database
    of ``dialect``: all do, except those whose ``info["dialects"]`` names others. For Alembic's
    ``include_object`` when comparing a database with ``metadata``."""
    dialects = getattr(schema_object, "info", {}).get("dialects")
    return dialects is None or dialect in dialects
