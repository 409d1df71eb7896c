"""backend.storage and DbSink on a real PostgreSQL server, each test in a fresh schema.

Server: postgresql+psycopg://postgres@127.0.0.1:5432/test (skipped when unreachable).
"""

from __future__ import annotations

import math
import threading
import uuid
from urllib.parse import quote

import psycopg
import pytest
from alembic import command
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import OperationalError

from backend.storage import db, evaluations, exports, metrics, pairs, runs
from backend.storage.db import head_revision, init_db, make_engine, schema_differences
from backend.storage.fencing import StaleAttempt
from backend.storage.tables import metadata, metric_points, metric_series
from contracts.events import EvalRecord, MetricPoint, PairRecord, PairText
from tests.unit import test_storage_rollups_migration
from tests.unit.test_storage_metrics import check_paging_equals_a_seq_walk
from tests.unit.test_storage_series_migration import migrate_and_check
from worker.jobs.db_sink import DbSink

pytestmark = pytest.mark.postgres
SERVER = "postgresql://postgres@127.0.0.1:5432/test"


def _url(schema: str, *options: str) -> str:
    settings = " ".join([f"-csearch_path={schema}", *options])
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options={quote(settings)}"


@pytest.fixture
def schema():
    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    name = f"as_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        admin.execute(f"DROP SCHEMA {name} CASCADE")
        admin.close()


@pytest.fixture
def engine(schema):
    engine = init_db(_url(schema))
    yield engine
    engine.dispose()


@pytest.fixture
def run_id(engine):
    with engine.begin() as conn:
        run_id = runs.create_run(conn, "{}", "run", None, None)
        assert runs.claim_run(conn, run_id, 1)
        assert not runs.claim_run(conn, run_id, 1)
    return run_id


def _count(engine, table=metric_points) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_migrations_build_the_tables_once(schema):
    threads = [threading.Thread(target=lambda: init_db(_url(schema)).dispose()) for _ in range(2)]
    for thread in threads:  # concurrent upgrades serialize on the advisory lock
        thread.start()
    for thread in threads:
        thread.join()
    engine = init_db(_url(schema))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
        assert schema_differences(conn) == []
        collation = conn.execute(
            text(
                "SELECT collation_name FROM information_schema.columns "
                "WHERE table_schema = :s AND table_name = 'metric_series' AND column_name = 'key'"
            ),
            {"s": schema},
        ).scalar()
    assert collation == "C"
    assert set(inspect(engine).get_table_names(schema=schema)) == {*metadata.tables, "alembic_version"}
    engine.dispose()


def test_migration_0005_backfills_series_and_downgrades(schema):
    migrate_and_check(_url(schema))


def test_migration_0006_drops_the_rollups_foreign_key_and_downgrades(schema):
    test_storage_rollups_migration.migrate_and_check(_url(schema))


def _series_of_points(engine) -> list[tuple[str, str, int]]:
    """(run_id, key) of the series each point's id names (None: no such series) and its step, by seq."""
    sql = (
        "SELECT s.run_id, s.key, p.step FROM metric_points p"
        " LEFT JOIN metric_series s ON s.id = p.series_id ORDER BY p.seq"
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def test_series_survive_a_rollback_and_go_with_delete_run(engine, run_id):
    points = [MetricPoint(key, step, 1.0, 1.0) for key in ("train/loss", "train/lr") for step in range(3)]
    with pytest.raises(RuntimeError), engine.begin() as conn:
        assert metrics.insert_points(conn, run_id, 1, points) == 6  # creates both series (ids 1, 2)
        raise RuntimeError("the commit never happens")
    assert _count(engine, metric_series) == 0
    with engine.begin() as conn:  # the retry: 6 points, new series ids (the sequence moved on)
        assert metrics.insert_points(conn, run_id, 1, points) == 6
        assert metrics.series_ids(conn, run_id) == {"train/loss": 3, "train/lr": 4}
        assert metrics.insert_points(conn, run_id, 1, points) == 0
        other = runs.create_run(conn, "{}", "other", None, None)
        assert runs.claim_run(conn, other, 1)
        assert metrics.insert_points(conn, other, 1, [MetricPoint("train/lr", 0, 2.0, 1.0)]) == 1
    stored = _series_of_points(engine)
    assert sorted(stored) == sorted([*((run_id, p.key, p.step) for p in points), (other, "train/lr", 0)])
    with engine.begin() as conn:
        assert runs.delete_run(conn, run_id)
    assert _series_of_points(engine) == [(other, "train/lr", 0)]
    assert _count(engine, metric_series) == 1
    with engine.connect() as conn:
        assert metrics.series(conn, other, "train/lr") == [(0, 2.0)]
        assert metrics.series(conn, run_id, "train/lr") == []


def test_two_writers_of_a_new_series_share_it(engine, run_id):
    points = [MetricPoint("train/new", step, float(step), 1.0) for step in range(3)]
    second: list[int] = []

    def write_again() -> None:
        with engine.begin() as conn:
            second.append(metrics.insert_points(conn, run_id, 1, points))

    with engine.begin() as conn:
        assert metrics.insert_points(conn, run_id, 1, points) == 3
        thread = threading.Thread(target=write_again)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # its series insert waits for this uncommitted series row
    thread.join(10.0)
    assert second == [0]  # took the committed series and stored no step twice
    assert (_count(engine, metric_series), _count(engine)) == (1, 3)


def test_points_are_idempotent_fenced_and_keep_nan(engine, run_id):
    values = [5, 1, 9, 3, math.nan, math.inf, 8, 4, 6, 0, 10, 11]
    points = [MetricPoint("train/loss", step, float(v), 10.0 + step) for step, v in enumerate(values)]
    with engine.begin() as conn:
        assert metrics.insert_points(conn, run_id, 1, points) == 12
        assert metrics.insert_points(conn, run_id, 1, points) == 0
    with pytest.raises(StaleAttempt), engine.begin() as conn:
        metrics.insert_points(conn, run_id, 2, [MetricPoint("train/loss", 99, 1.0, 1.0)])
    with engine.connect() as conn:
        full = metrics.series(conn, run_id, "train/loss")
        # NaN present → 3 per bucket, (8 − 2) // 3 = 2 buckets (steps 0–5, 6–11):
        # bucket 0: min 1 @1, max inf @5, first NaN @4; bucket 1: min 0 @9, max 11 @11; first @0.
        sampled = metrics.series(conn, run_id, "train/loss", max_points=8)
        assert [p.seq for p in metrics.points_after(conn, run_id, 10)] == [11, 12]
        assert metrics.last_seq(conn) == 24  # the retry's block 13–24 was allocated, nothing stored
    assert len(full) == 12 and math.isnan(full[4][1]) and full[5] == (5, math.inf)
    assert [s for s, _ in sampled] == [0, 1, 4, 5, 9, 11]
    assert [v for _, v in sampled if not math.isnan(v)] == [5, 1, math.inf, 0, 11]
    assert _count(engine) == 12


def test_pair_records_texts_and_evaluations(engine, run_id):
    records = [
        PairRecord(0, 0, "a", -1.0, -2.0, -1.5, -2.5, 3, 4, 1.0, 1.0, True, 0.1, 0.0, 2.0),  # z 0.5
        PairRecord(0, 0, "b", -1.0, -2.0, -1.5, -2.5, 3, 4, 3.0, 0.2, False, 0.1, 0.0, 0.0),  # z 3000
        PairRecord(1, 0, "a", -1.0, -2.0, -1.5, -2.5, 3, 4, math.nan, 0.5, True, 0.1, 0.0, 1.0),
    ]
    record = EvalRecord(5, 0.7, "exact", "reference", 3, 1, 0, 0.875, 0.5, 0.98)
    with engine.begin() as conn:
        assert pairs.insert_pair_records(conn, run_id, 1, records) == 3
        assert pairs.insert_pair_records(conn, run_id, 1, records) == 0
        assert pairs.insert_pair_texts(conn, run_id, [PairText("a", "x", "y", "z")] * 2) == 1
        assert evaluations.insert_evaluation(conn, run_id, record, attempt=1)
        assert not evaluations.insert_evaluation(conn, run_id, record)
        with pytest.raises(StaleAttempt):
            pairs.insert_pair_records(conn, run_id, 3, records)
    with engine.connect() as conn:
        by_z = pairs.query_pairs(conn, run_id, order="z")
        summary = pairs.pair_summary(conn, run_id, kept=None)
        exported = list(exports.pair_rows(conn, run_id))
        assert evaluations.list_evaluations(conn, run_id) == [record]
    assert [(r.record.pair_id, r.z) for r in by_z[:2]] == [("b", 3000.0), ("a", 0.5)]
    assert math.isnan(by_z[2].record.discrepancy) and by_z[1].prompt == "x"
    assert [(s.pair_id, s.times_seen, s.times_filtered) for s in summary] == [("b", 1, 1), ("a", 2, 0)]
    assert [r[2] for r in exported] == ["a", "b", "a"]


def test_requeue_and_fenced_writer(engine, run_id):
    with engine.begin() as conn:
        assert runs.set_checkpoint(conn, run_id, 1, "/ckpt/1")
        conn.execute(text("UPDATE runs SET heartbeat_at = 0"))
        assert runs.requeue_stale(conn, 60.0, max_attempts=2) == [(run_id, 2)]
        assert runs.claim_run(conn, run_id, 2)
        with pytest.raises(StaleAttempt):
            metrics.insert_points(conn, run_id, 1, [MetricPoint("train/loss", 0, 1.0, 1.0)])
        assert not runs.heartbeat(conn, run_id, 1)
        assert runs.heartbeat(conn, run_id, 2, step=1)


def test_sink_back_fills_after_a_lock_out(schema, engine, run_id):
    impatient = make_engine(_url(schema, "-clock_timeout=100"))
    sink = DbSink(impatient, run_id, 1, batch_rows=4, flush_every_s=60.0, retry_s=(0.0, 0.0))
    points = [MetricPoint("train/loss", step, float(step), 1.0) for step in range(8)]
    blocker = psycopg.connect(SERVER, options=f"-csearch_path={schema}")
    blocker.execute("LOCK TABLE metric_points IN EXCLUSIVE MODE")  # writers wait past lock_timeout
    try:
        sink.points(points[:4])
        assert sink.pending == 4
        with pytest.raises(OperationalError):
            sink.flush()
    finally:
        blocker.rollback()
        blocker.close()
    sink.points(points[4:])
    assert (sink.pending, _count(engine)) == (0, 8)
    sink.points(points)
    sink.close()
    assert _count(engine) == 8
    impatient.dispose()


# ------------------------------------------- the stream cursor (migration 0007: BRIN on seq)

BRIN = "ix_metric_points_seq_brin"


def _indexes(conn) -> dict[str, str]:
    rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'metric_points'"))
    return dict(rows.tuples().all())


def _primary_key(conn) -> list[str]:
    return inspect(conn).get_pk_constraint("metric_points")["constrained_columns"]


def test_paging_through_the_brin_index_equals_a_seq_walk(engine):
    check_paging_equals_a_seq_walk(engine)


def test_migration_0007_swaps_the_seq_key_for_brin_and_back(schema, engine):
    with engine.begin() as conn:
        run_id = runs.create_run(conn, "{}", "run", None, None)
        runs.claim_run(conn, run_id, 1)
        metrics.insert_points(
            conn, run_id, 1, [MetricPoint("train/loss", s, 1.0 / (s + 1), 0.0) for s in range(50)]
        )
    with engine.connect() as conn:
        assert _primary_key(conn) == [] and "USING brin (seq)" in _indexes(conn)[BRIN]
        assert db.schema_differences(conn) == []
    config = db.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    with engine.connect() as conn:
        assert _primary_key(conn) == ["seq"] and BRIN not in _indexes(conn)
        assert conn.execute(text("SELECT count(*) FROM metric_points")).scalar_one() == 50
    db.upgrade(_url(schema), "head")
    with engine.connect() as conn:
        assert _primary_key(conn) == [] and BRIN in _indexes(conn)
        assert [p.step for p in metrics.points_after(conn, run_id, 10, limit=5)] == [10, 11, 12, 13, 14]


def test_a_seq_window_is_read_through_the_brin_index(engine):
    with engine.begin() as conn:
        run_id = runs.create_run(conn, "{}", "run", None, None)
        runs.claim_run(conn, run_id, 1)
        points = [MetricPoint(f"k{k}", s, float(s), 0.0) for s in range(4_000) for k in range(50)]
        metrics.insert_points(conn, run_id, 1, points)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE metric_points"))
        mp = metric_points.c
        window = select(metric_points).where(mp.seq > 150_000, mp.seq <= 151_000).order_by(mp.seq).limit(1000)
        compiled = window.compile(conn, compile_kwargs={"literal_binds": True})
        plan = "\n".join(conn.execute(text(f"EXPLAIN {compiled}")).scalars())
        assert f"Bitmap Index Scan on {BRIN}" in plan, plan
        assert [p.seq for p in metrics.points_after(conn, None, 150_000)] == list(range(150_001, 151_001))


def test_the_writer_summarizes_new_ranges_and_skips_a_busy_lock(engine, schema, run_id):
    points = [MetricPoint(f"k{k}", s, float(s), 0.0) for s in range(1_200) for k in range(50)]
    sink = DbSink(engine, run_id, 1, summarize_rows=20_000)
    sink.points(points)
    sink.close()  # 60,000 points in one chunk: summarized after its commit
    with engine.begin() as conn:
        assert metrics.summarize_new_points(conn) == 0  # nothing left to summarize
        metrics.insert_points(conn, run_id, 1, [MetricPoint("k0", s, 1.0, 0.0) for s in range(1_200, 31_200)])
    admin = psycopg.connect(_url(schema).replace("+psycopg", ""), autocommit=False)
    try:
        admin.execute("LOCK TABLE metric_points IN SHARE UPDATE EXCLUSIVE MODE")  # as a vacuum holds it
        with engine.begin() as conn:
            assert metrics.summarize_new_points(conn) is None  # skipped after 50 ms
            assert runs.heartbeat(conn, run_id, 1, step=1)  # the transaction is still usable
    finally:
        admin.rollback()
        admin.close()
    with engine.begin() as conn:
        assert metrics.summarize_new_points(conn) >= 1
