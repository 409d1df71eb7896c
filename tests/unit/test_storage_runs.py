"""backend.storage.runs on SQLite: the run state machine, its conditions, reconciliation, deletion."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, update

from backend.storage import evaluations, metrics, pairs, runs
from backend.storage.db import init_db
from backend.storage.fencing import StaleAttempt
from backend.storage.tables import evaluations as evaluations_table
from backend.storage.tables import judgments, metric_points, metric_series, pair_records
from backend.storage.tables import pairs as pairs_table
from backend.storage.tables import runs as runs_table
from contracts.events import EvalRecord, Judgment, MetricPoint, PairRecord, PairText


@pytest.fixture
def engine(tmp_path):
    engine = init_db(f"sqlite:///{tmp_path / 'alignscope.db'}")
    yield engine
    engine.dispose()


def _new(engine, name="run", preset=None, group=None, parent_id=None) -> str:
    with engine.begin() as conn:
        return runs.create_run(conn, '{"seed": 0}', name, preset, group, parent_id)


def _running(engine, **kwargs) -> str:
    run_id = _new(engine, **kwargs)
    with engine.begin() as conn:
        assert runs.claim_run(conn, run_id, 1)
    return run_id


def _set(engine, run_id, **values) -> None:
    with engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(**values))


def _get(engine, run_id) -> runs.RunRow:
    with engine.connect() as conn:
        row = runs.get_run(conn, run_id)
    assert row is not None
    return row


def test_create_and_get(engine):
    before = time.time()
    run_id = _new(engine, name="β-DPO", preset="tiny", group="sweep", parent_id=None)
    row = _get(engine, run_id)
    assert len(run_id) == 32 and int(run_id, 16) >= 0
    assert (row.name, row.status, row.config, row.preset, row.group_name) == (
        "β-DPO",
        "queued",
        '{"seed": 0}',
        "tiny",
        "sweep",
    )
    assert (row.attempt, row.stop_requested, row.progress, row.started_at) == (1, False, 0.0, None)
    assert before <= row.created_at <= time.time()
    with engine.connect() as conn:
        assert runs.get_run(conn, "0" * 32) is None


def test_list_runs_filters_order_and_pages(engine):
    ids = [
        _new(engine, name="Alpha 50%", preset="p1", group="g1"),
        _new(engine, name="beta", preset="p1", group="g2"),
        _new(engine, name="ALPHA two", preset="p2", group="g1"),
    ]
    for created, run_id in enumerate(ids):
        _set(engine, run_id, created_at=1000.0 + created)
    _set(engine, ids[1], status="running")
    with engine.connect() as conn:
        assert [r.id for r in runs.list_runs(conn)] == ids[::-1]  # newest first
        assert [r.id for r in runs.list_runs(conn, name="alpha")] == [ids[2], ids[0]]
        assert [r.id for r in runs.list_runs(conn, name="50%")] == [ids[0]]  # % is literal
        assert [r.id for r in runs.list_runs(conn, name="a%t")] == []
        assert [r.id for r in runs.list_runs(conn, status="running")] == [ids[1]]
        assert [r.id for r in runs.list_runs(conn, preset="p1", group="g1")] == [ids[0]]
        assert [r.id for r in runs.list_runs(conn, limit=2, offset=1)] == [ids[1], ids[0]]


def test_claim_is_conditional(engine):
    run_id = _new(engine)
    with engine.begin() as conn:
        assert not runs.claim_run(conn, run_id, 2)  # wrong attempt
        assert runs.claim_run(conn, run_id, 1)
        assert not runs.claim_run(conn, run_id, 1)  # duplicate delivery does nothing
        assert not runs.claim_run(conn, "0" * 32, 1)
    row = _get(engine, run_id)
    assert row.status == "running" and row.started_at is not None
    assert row.heartbeat_at == row.started_at


def test_heartbeat_updates_only_given_fields_of_the_owner(engine):
    run_id = _running(engine)
    _set(engine, run_id, heartbeat_at=5.0)
    with engine.begin() as conn:
        assert runs.heartbeat(conn, run_id, 1, step=3, total_steps=10, progress=0.3, message="training")
        assert runs.heartbeat(conn, run_id, 1, message="step 4")
        assert not runs.heartbeat(conn, run_id, 2, message="stale writer")
    row = _get(engine, run_id)
    assert (row.step, row.total_steps, row.progress, row.message) == (3, 10, 0.3, "step 4")
    assert row.heartbeat_at > 5.0
    queued = _new(engine)
    with engine.begin() as conn:
        assert not runs.heartbeat(conn, queued, 1)


def test_finish_run(engine):
    run_id = _running(engine)
    with engine.begin() as conn:
        with pytest.raises(ValueError):
            runs.finish_run(conn, run_id, 1, "running")
        assert not runs.finish_run(conn, run_id, 2, "succeeded")
        assert runs.finish_run(conn, run_id, 1, "succeeded")
        assert not runs.finish_run(conn, run_id, 1, "failed")  # already final
    row = _get(engine, run_id)
    assert (row.status, row.progress, row.error) == ("succeeded", 1.0, None)
    assert row.finished_at is not None
    failed = _running(engine)
    with engine.begin() as conn:
        assert runs.finish_run(conn, failed, 1, "failed", error="CUDA out of memory")
    assert (_get(engine, failed).status, _get(engine, failed).error) == ("failed", "CUDA out of memory")


def test_request_stop_and_stop_requested(engine):
    queued, running = _new(engine), _running(engine)
    with engine.begin() as conn:
        assert not runs.stop_requested(conn, running, 1)
        assert runs.request_stop(conn, queued) == "stopped"
        assert runs.request_stop(conn, running) == "running"
        assert runs.request_stop(conn, "0" * 32) is None
        assert runs.stop_requested(conn, running)
        assert runs.stop_requested(conn, "0" * 32)  # a deleted run stops its trainer
    assert _get(engine, queued).status == "stopped" and _get(engine, queued).finished_at is not None
    with engine.begin() as conn:
        assert not runs.claim_run(conn, queued, 1)
        assert runs.finish_run(conn, running, 1, "stopped")
        assert runs.request_stop(conn, running) == "stopped"  # final states do not change


def test_stop_requested_when_attempt_no_longer_owns_the_run(engine):
    run_id = _running(engine)
    with engine.begin() as conn:
        assert not runs.stop_requested(conn, run_id, 1)
        assert runs.stop_requested(conn, run_id, 2)
        assert not runs.stop_requested(conn, run_id)
        runs.finish_run(conn, run_id, 1, "failed")
        assert runs.stop_requested(conn, run_id, 1)


def test_requeue_stale(engine):
    resumable, no_checkpoint, exhausted, stopping, fresh = (_running(engine) for _ in range(5))
    for run_id in (resumable, exhausted, fresh):
        _set(engine, run_id, checkpoint_path=f"/ckpt/{run_id}")
    _set(engine, exhausted, attempt=3)
    _set(engine, stopping, stop_requested=True)
    for run_id in (resumable, no_checkpoint, exhausted, stopping):
        _set(engine, run_id, heartbeat_at=1000.0)
    _set(engine, fresh, heartbeat_at=1050.0)
    # now = 1100, stale_after = 60 → cutoff 1040: heartbeats at 1000 are stale, 1050 is not.
    with engine.begin() as conn:
        assert runs.requeue_stale(conn, 60.0, max_attempts=3, now=1100.0) == [(resumable, 2)]
        assert runs.requeue_stale(conn, 60.0, max_attempts=3, now=1100.0) == []
    statuses = {
        run_id: _get(engine, run_id) for run_id in (resumable, no_checkpoint, exhausted, stopping, fresh)
    }
    assert (statuses[resumable].status, statuses[resumable].attempt) == ("queued", 2)
    assert statuses[resumable].heartbeat_at is None
    assert (statuses[no_checkpoint].status, statuses[no_checkpoint].error) == ("failed", runs.HEARTBEAT_LOST)
    assert (statuses[exhausted].status, statuses[exhausted].attempt) == ("failed", 3)
    assert statuses[stopping].status == "stopped"
    assert statuses[fresh].status == "running"
    with engine.begin() as conn:
        assert not runs.claim_run(conn, resumable, 1)  # the old attempt's delivery
        assert runs.claim_run(conn, resumable, 2)
        with pytest.raises(StaleAttempt):
            metrics.insert_points(conn, resumable, 1, [MetricPoint("train/loss", 0, 0.5, 1.0)])


def test_set_checkpoint_and_environment_are_fenced(engine):
    run_id = _running(engine)
    with engine.begin() as conn:
        assert runs.set_checkpoint(conn, run_id, 1, "/ckpt/step-10")
        assert not runs.set_checkpoint(conn, run_id, 2, "/ckpt/other")
        assert runs.set_environment(conn, run_id, 1, '{"torch": "2.13.0"}')
        assert not runs.set_environment(conn, run_id, 2, "{}")
    row = _get(engine, run_id)
    assert (row.checkpoint_path, row.environment) == ("/ckpt/step-10", '{"torch": "2.13.0"}')


def test_delete_run_removes_its_rows_and_unlinks_clones(engine):
    parent, other = _running(engine), _running(engine)
    clone = _new(engine, parent_id=parent)
    record = PairRecord(0, 0, "p", -1.0, -2.0, -1.0, -2.0, 3, 4, 0.1, 1.0, True, 0.1, 0.0, 1.0)
    with engine.begin() as conn:
        for run_id in (parent, other):
            metrics.insert_points(conn, run_id, 1, [MetricPoint("train/loss", 0, 0.5, 1.0)])
            metrics.insert_points(conn, run_id, 1, [MetricPoint("train/lr", 0, 0.1, 1.0)])
            pairs.insert_pair_records(conn, run_id, 1, [record])
            pairs.insert_pair_texts(conn, run_id, [PairText("p", "x", "y", "z")])
            evaluations.insert_evaluation(
                conn, run_id, EvalRecord(0, 0.7, "j", "ref", 1, 0, 1, 0.5, 0.1, 0.9)
            )
            evaluations.insert_judgments(
                conn, run_id, [Judgment(0, 0.7, "j", "ref", 0, "x", "y", "z", "win", "A")]
            )
        assert runs.delete_run(conn, parent)
        assert not runs.delete_run(conn, parent)
    with engine.connect() as conn:
        # other's rows only: 2 points and 2 series (train/loss, train/lr), 1 row of every other table.
        expected = {metric_series: 2, pair_records: 1, pairs_table: 1, evaluations_table: 1, judgments: 1}
        for table, rows in expected.items():
            counts = dict(conn.execute(select(table.c.run_id, func.count()).group_by(table.c.run_id)).all())
            assert counts == {other: rows}, table.name
        points = select(metric_series.c.run_id).join_from(
            metric_points, metric_series, metric_series.c.id == metric_points.c.series_id, isouter=True
        )
        assert conn.execute(points).scalars().all() == [other, other]  # none left without its series
        assert metrics.keys(conn, other) == ["train/loss", "train/lr"]
        assert metrics.series(conn, other, "train/lr") == [(0, 0.1)]
        assert runs.get_run(conn, parent) is None
        assert runs.get_run(conn, clone).parent_id is None
