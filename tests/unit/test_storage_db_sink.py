"""worker.jobs.db_sink.DbSink on SQLite: batching, heartbeat, back-fill after a real lock-out, fencing."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from backend.storage import runs
from backend.storage.db import init_db, make_engine, reader
from backend.storage.fencing import StaleAttempt
from backend.storage.tables import metric_points, pair_records, pairs
from backend.storage.tables import runs as runs_table
from contracts.events import MetricPoint, MetricsSink, PairRecord, PairText
from worker.jobs.db_sink import DbSink

POINTS = [MetricPoint("train/loss", step, 1.0 / (step + 1), 100.0 + step) for step in range(10)]


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path):
    return tmp_path / "alignscope.db"


@pytest.fixture
def engine(path):
    engine = init_db(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture
def run_id(engine):
    with engine.begin() as conn:
        run_id = runs.create_run(conn, "{}", "run", None, None)
        runs.claim_run(conn, run_id, 1)
    return run_id


@pytest.fixture
def clock():
    return Clock()


def _stored(engine, table=metric_points) -> int:
    with reader(engine).connect() as conn:  # DEFERRED: works while another writer holds the lock
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _run(engine, run_id) -> runs.RunRow:
    with engine.connect() as conn:
        return runs.get_run(conn, run_id)


def test_buffers_until_batch_rows_or_interval(engine, run_id, clock):
    sink: MetricsSink = DbSink(engine, run_id, 1, batch_rows=10, flush_every_s=5.0, clock=clock)
    sink.points(POINTS[:5])
    assert (_stored(engine), sink.pending) == (0, 5)
    sink.points(POINTS[5:])  # 10 rows buffered → one batch
    assert (_stored(engine), sink.pending) == (10, 0)
    sink.points([MetricPoint("train/lr", 0, 1e-3, 100.0)])
    assert _stored(engine) == 10
    clock.now += 5.0
    sink.texts([])  # any call after flush_every_s writes the buffer
    assert _stored(engine) == 11


def test_flush_and_close_write_every_kind_in_chunks(engine, run_id, clock):
    sink = DbSink(engine, run_id, 1, batch_rows=1000, flush_every_s=60.0, chunk_rows=3, clock=clock)
    record = PairRecord(0, 0, "p", -1.0, -2.0, -1.0, -2.0, 3, 4, 0.1, 1.0, True, 0.1, 0.0, 1.0)
    sink.points(POINTS[:7])
    sink.pairs([replace(record, micro_batch=mb) for mb in range(4)])
    sink.texts([PairText("p", "x", "y", "z")])
    sink.flush()  # 7 points, 4 records in chunks of 3 → three transactions
    assert (_stored(engine), _stored(engine, pair_records), _stored(engine, pairs)) == (7, 4, 1)
    sink.points(POINTS[7:])
    sink.close()
    assert (_stored(engine), sink.pending) == (10, 0)


def test_status_renews_the_heartbeat_at_most_every_interval(engine, run_id, clock):
    with engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(heartbeat_at=1.0))
    sink = DbSink(engine, run_id, 1, flush_every_s=60.0, heartbeat_every_s=1.0, clock=clock)
    sink.status("loading", 0.0)  # created at this instant: no heartbeat due yet
    assert _run(engine, run_id).message is None
    clock.now += 1.0
    sink.status("step 1", 0.25)
    row = _run(engine, run_id)
    assert (row.message, row.progress) == ("step 1", 0.25) and row.heartbeat_at > 1.0
    sink.status("step 2")  # within the interval: kept for the next write
    assert _run(engine, run_id).message == "step 1"
    sink.flush()
    assert (_run(engine, run_id).message, _run(engine, run_id).progress) == ("step 2", 0.25)


def test_back_fills_after_the_database_was_locked(path, engine, run_id, clock):
    impatient = make_engine(f"sqlite:///{path}", busy_timeout_s=0.05)
    sink = DbSink(impatient, run_id, 1, batch_rows=4, flush_every_s=60.0, retry_s=(1.0, 8.0), clock=clock)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the busy timeout
    try:
        sink.points(POINTS[:4])  # due, fails, kept; next try not before now + 1 s
        assert (_stored(engine), sink.pending) == (0, 4)
        with pytest.raises(OperationalError):
            sink.flush()
        with pytest.raises(OperationalError):
            sink.close(timeout_s=0.0)
        sink.points(POINTS[4:8])
        assert sink.pending == 8
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    sink.points(POINTS[8:9])  # lock gone, but still backing off
    assert (_stored(engine), sink.pending) == (0, 9)
    clock.now += 1.0
    sink.points(POINTS[9:])
    assert (_stored(engine), sink.pending) == (10, 0)
    sink.points(POINTS)  # a re-sent batch (e.g. after an uncertain commit) adds nothing
    sink.flush()
    assert _stored(engine) == 10
    impatient.dispose()


def test_stale_attempt_is_raised_and_writes_nothing(engine, run_id, clock):
    sink = DbSink(engine, run_id, 1, batch_rows=100, clock=clock)
    sink.points(POINTS)
    with engine.begin() as conn:  # the reconciler re-queued the run meanwhile
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(attempt=2))
    with pytest.raises(StaleAttempt):
        sink.flush()
    assert (_stored(engine), sink.pending) == (0, 0)
    with pytest.raises(StaleAttempt):
        sink.points(POINTS)
    assert sink.stop_requested()


def test_heartbeat_of_a_run_no_longer_running_is_stale(engine, run_id, clock):
    sink = DbSink(engine, run_id, 1, clock=clock)
    with engine.begin() as conn:
        runs.finish_run(conn, run_id, 1, "failed", error="heartbeat lost (worker died?)")
    sink.status("still here")
    with pytest.raises(StaleAttempt):
        sink.flush()


def test_stop_requested_polls_at_most_every_interval(engine, run_id, clock):
    sink = DbSink(engine, run_id, 1, heartbeat_every_s=1.0, clock=clock)
    assert not sink.stop_requested()
    with engine.begin() as conn:
        runs.request_stop(conn, run_id)
    assert not sink.stop_requested()  # polled less than a second ago
    clock.now += 1.0
    assert sink.stop_requested()


def test_a_checkpoint_is_recorded_on_the_run_as_it_is_written(engine, run_id, clock):
    """No heartbeat in between: a host killed right after the checkpoint still finds it recorded."""
    sink = DbSink(engine, run_id, 1, heartbeat_every_s=3600.0, clock=clock)
    assert _run(engine, run_id).checkpoint_path is None
    sink.checkpointed("/data/checkpoints/r", 4)
    assert _run(engine, run_id).checkpoint_path == "/data/checkpoints/r"
    with engine.begin() as conn:  # another attempt owns the run now: fenced
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(attempt=2))
    with pytest.raises(StaleAttempt):
        sink.checkpointed("/elsewhere", 6)
    assert _run(engine, run_id).checkpoint_path == "/data/checkpoints/r"
