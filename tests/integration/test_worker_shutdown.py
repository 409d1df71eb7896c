"""A worker shutting down cleanly hands its run back: real processes, real signals.

SIGTERM to ``alignscope worker`` (Redis + PostgreSQL) or Ctrl-C on ``alignscope serve`` (embedded:
SQLite, filesystem broker) while a run trains: the trainer finishes its step, checkpoints, flushes
and RELEASES the run (queued, same attempt) and its task is sent again, long before the reconciler's
stale-heartbeat time (60 s, its default, here); the next worker resumes it from the checkpoint and
every step is stored exactly once. A second SIGTERM kills the trainer at once, and the supervisor
releases the run from its last recorded checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from backend.storage import runs
from backend.storage.db import init_db, make_engine
from tests.integration.conftest import (
    FINAL,
    REPO,
    Api,
    ProcessKeeper,
    free_port,
    loss_points,
    loss_steps,
    pids_using,
    run_row,
    tiny_config,
    trainer_pids,
    wait_for,
)


def _released(engine: Engine, run_id: str, timeout: float) -> runs.RunRow:
    return wait_for(lambda: (r := run_row(engine, run_id)).status != "running" and r, timeout, "the release")


def _loss_times(engine: Engine, run_id: str) -> dict[int, float]:
    """step → wall time of the run's train/loss points."""
    return dict(loss_points(engine, run_id))


def test_release_keeps_the_attempt_and_yields_to_a_user_stop(tmp_path: Path) -> None:
    engine = init_db(f"sqlite:///{tmp_path / 'alignscope.db'}")
    with engine.begin() as conn:
        run_id = runs.create_run(conn, "{}", "run", None, None)
        assert runs.claim_run(conn, run_id, 1)
        first_start = runs.get_run(conn, run_id).started_at
        assert not runs.release_run(conn, run_id, 2)  # not this attempt's
        assert runs.release_run(conn, run_id, 1)
        assert not runs.release_run(conn, run_id, 1)  # already queued
    row = run_row(engine, run_id)
    assert (row.status, row.attempt, row.heartbeat_at, row.message) == ("queued", 1, None, runs.RELEASED)
    time.sleep(0.01)
    with engine.begin() as conn:
        assert runs.claim_run(conn, run_id, 1)  # the same attempt is claimed again, with a new start
        assert runs.get_run(conn, run_id).started_at > first_start
        assert runs.request_stop(conn, run_id) == "running"
        assert not runs.release_run(conn, run_id, 1)  # the user's stop wins
    assert run_row(engine, run_id).status == "running"
    engine.dispose()


SIGNALLED_CHILD = """
import time
from worker.jobs.trainer import ShutdownSignals
asked = ShutdownSignals().install()
print("ready", flush=True)
while not asked():
    time.sleep(0.01)
print("asked to stop", flush=True)
while True:
    time.sleep(0.01)
"""


@pytest.mark.slow
def test_trainer_signals_first_ask_to_stop_and_the_same_signal_again_kills() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", SIGNALLED_CHILD], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGINT)  # Ctrl-C on the worker's terminal
        assert child.stdout.readline() == "asked to stop\n"
        child.send_signal(signal.SIGTERM)  # the supervisor's forward: another kind, no abort
        time.sleep(1.5)
        assert child.poll() is None
        child.send_signal(signal.SIGINT)  # the second Ctrl-C
        assert child.wait(10) == -signal.SIGINT
    finally:
        child.kill()
        child.wait()


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_sigterm_releases_the_run_at_once_and_the_next_worker_resumes_it(
    scaleout: ProcessKeeper, scaleout_api: Api, pg_engine: Engine, redis_url: str, data_dir: Path
) -> None:
    steps = 120  # long enough to be caught mid-run on a quiet machine (a 24-step run finished first)
    first = scaleout.worker()
    run_id = scaleout_api.submit(tiny_config(f"optim.max_steps={steps}"))
    scaleout_api.wait_step(run_id, 3, 120)
    signalled = time.monotonic()
    first.process.send_signal(signal.SIGTERM)
    row = _released(pg_engine, run_id, 20)
    assert time.monotonic() - signalled < 20  # the stale-heartbeat time is 60 s
    assert (row.status, row.attempt, row.heartbeat_at, row.message) == ("queued", 1, None, runs.RELEASED)
    assert row.checkpoint_path == str(data_dir / "checkpoints" / run_id) and 3 <= row.step < steps
    assert first.process.wait(30) == 0 and not trainer_pids(data_dir, run_id)
    assert f"run {run_id} attempt 1: released to the queue; task sent again" in first.output()
    assert redis.Redis.from_url(redis_url).llen("celery") >= 1, first.output()  # the wake-up waits
    before = _loss_times(pg_engine, run_id)
    assert sorted(before) == list(range(1, row.step + 1))  # flushed before the release
    restarted = time.time()
    second = scaleout.worker()
    run = scaleout_api.wait(run_id, FINAL, 180)
    assert (run["status"], run["attempt"], run["step"]) == ("succeeded", 1, steps), run["error"]
    assert loss_steps(pg_engine, run_id) == list(range(1, steps + 1))  # each step once
    after = _loss_times(pg_engine, run_id)
    assert all(after[s] == before[s] for s in before)  # the old rows are kept as they were
    assert all(after[s] > restarted for s in range(row.step + 1, steps + 1))  # by the resumed trainer
    assert f"run {run_id} attempt 1: trainer pid" in second.output()
    log = (data_dir / "logs" / run_id / "attempt-1.log").read_text()
    assert "SIGTERM: stopping after this step" in log and "resuming from the checkpoint" in log
    assert "Traceback" not in log
    assert json.loads(run_row(pg_engine, run_id).environment)["worker"].endswith(f":{second.process.pid}")


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_a_second_sigterm_kills_the_trainer_and_the_run_resumes_from_its_last_checkpoint(
    scaleout: ProcessKeeper, scaleout_api: Api, pg_engine: Engine, data_dir: Path
) -> None:
    first = scaleout.worker()
    config = tiny_config("optim.max_steps=120", "checkpoint_every=2")  # long enough to be caught mid-run
    run_id = scaleout_api.submit(config)
    scaleout_api.wait_step(run_id, 2, 120)
    recorded = lambda: run_row(pg_engine, run_id).checkpoint_path is not None  # noqa: E731
    wait_for(recorded, 30, "the checkpoint to be recorded")
    (trainer,) = trainer_pids(data_dir, run_id)
    os.kill(trainer, signal.SIGSTOP)  # a trainer deep in a long step: it cannot act on SIGTERM
    signalled = time.monotonic()
    first.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # two signals, not one coalesced
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(30) == 0
    assert time.monotonic() - signalled < 10  # not the 30 s grace
    output = first.output()
    assert "1 trainer(s) killed" in output and "trainer ended by signal 9 during shutdown" in output
    row = run_row(pg_engine, run_id)
    assert (row.status, row.attempt, row.message) == ("queued", 1, runs.RELEASED)
    scaleout.worker()
    run = scaleout_api.wait(run_id, FINAL, 180)
    assert (run["status"], run["attempt"], run["step"]) == ("succeeded", 1, 120), run["error"]
    assert loss_steps(pg_engine, run_id) == list(range(1, 121))  # recomputed steps were not stored twice


@pytest.mark.slow
def test_ctrl_c_on_serve_releases_the_run_and_the_next_serve_resumes_it(
    keeper: ProcessKeeper, data_dir: Path
) -> None:
    port = free_port()
    serve = keeper.serve(port)
    api = Api(port)
    run_id = api.submit(tiny_config("optim.max_steps=120"))  # long enough to be caught mid-run
    api.wait_step(run_id, 3, 150)
    signalled = time.monotonic()
    assert serve.stop(signal.SIGINT, timeout=60) == 0
    assert time.monotonic() - signalled < 20
    wait_for(lambda: not pids_using(data_dir), 30, "serve, its worker and the trainer to exit")
    engine = make_engine(f"sqlite:///{data_dir / 'alignscope.db'}")
    row = run_row(engine, run_id)
    assert (row.status, row.attempt, row.message) == ("queued", 1, runs.RELEASED)
    assert any((data_dir / "broker" / "queue").iterdir())  # the wake-up, for the next start
    assert serve.output().count(f"run {run_id} attempt 1: trainer pid") == 1  # not claimed while stopping
    port = free_port()
    keeper.serve(port)
    Api(port).wait(run_id, ("running", *FINAL), 20)  # at once: not the reconciler's re-send (30 s)
    run = Api(port).wait(run_id, FINAL, 150)
    assert (run["status"], run["attempt"], run["step"]) == ("succeeded", 1, 120), run["error"]
    assert loss_steps(engine, run_id) == list(range(1, 121))
    engine.dispose()
