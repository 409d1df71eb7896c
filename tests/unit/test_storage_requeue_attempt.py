"""runs.requeue_attempt: a trainer that died (an OOM kill, a crash) without recording an outcome
re-queues its run at attempt + 1 only with a recorded checkpoint, attempts left and no stop asked."""

from __future__ import annotations

import pytest

from backend.storage import runs
from backend.storage.db import init_db


@pytest.fixture
def engine(tmp_path):
    engine = init_db(f"sqlite:///{tmp_path / 'store.db'}")
    yield engine
    engine.dispose()


def running(engine, attempt: int = 1, checkpoint: str | None = "/data/checkpoints/x") -> str:
    with engine.begin() as conn:
        run_id = runs.create_run(conn, "{}", "r", None, None)
        for n in range(1, attempt + 1):
            if n > 1:
                assert runs.requeue_attempt(conn, run_id, n - 1, "test", max_attempts=10)
            assert runs.claim_run(conn, run_id, n)
            if checkpoint:
                assert runs.set_checkpoint(conn, run_id, n, checkpoint)
    return run_id


def row(engine, run_id):
    with engine.connect() as conn:
        return runs.get_run(conn, run_id)


def test_a_dead_trainer_with_a_checkpoint_is_requeued_with_its_cause(engine):
    run_id = running(engine)
    with engine.begin() as conn:
        assert runs.requeue_attempt(conn, run_id, 1, "the trainer killed by signal 9", max_attempts=3)
        assert not runs.requeue_attempt(conn, run_id, 1, "again", max_attempts=3)  # no longer running at 1
    got = row(engine, run_id)
    assert (got.status, got.attempt, got.checkpoint_path) == ("queued", 2, "/data/checkpoints/x")
    assert "killed by signal 9" in got.message and "attempt 2" in got.message


def test_no_checkpoint_no_attempts_left_or_a_stop_asked_is_not_requeued(engine):
    bare = running(engine, checkpoint=None)
    spent = running(engine, attempt=3)
    stopped = running(engine)
    with engine.begin() as conn:
        runs.request_stop(conn, stopped)
        assert not runs.requeue_attempt(conn, bare, 1, "x", max_attempts=3)
        assert not runs.requeue_attempt(conn, spent, 3, "x", max_attempts=3)
        assert not runs.requeue_attempt(conn, stopped, 1, "x", max_attempts=3)
    assert [row(engine, r).status for r in (bare, spent, stopped)] == ["running"] * 3
