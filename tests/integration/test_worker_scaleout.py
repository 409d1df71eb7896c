"""The job side on Redis + PostgreSQL with real processes: ``alignscope serve --no-worker`` (uvicorn)
shared by the module, a Celery worker (``alignscope worker``) per test, trainers as their own
processes. Faults are real: duplicate deliveries, stops, kill -9 of the trainer and of the whole
worker, a Redis restart, PostgreSQL refusing connections for 20 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import celery
import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from tests.integration.conftest import (
    FINAL,
    PG_ADMIN,
    Api,
    ProcessKeeper,
    ensure_redis,
    loss_points,
    loss_steps,
    run_row,
    tiny_config,
    trainer_pids,
    wait_for,
)

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


def test_a_run_succeeds_once_though_its_task_is_delivered_three_times(
    scaleout: ProcessKeeper, scaleout_api: Api, pg_engine: Engine, redis_url: str, data_dir: Path
) -> None:
    worker = scaleout.worker()
    run_id = scaleout_api.submit(tiny_config())
    sender = celery.Celery("duplicates", broker=redis_url)
    for _ in range(2):  # the API sent it once; two more deliveries of the same attempt
        sender.send_task("runs.train", args=[run_id, 1], queue="celery")
    run = scaleout_api.wait(run_id, FINAL, 120)
    assert (run["status"], run["attempt"], run["step"]) == ("succeeded", 1, 8), run["error"]
    assert loss_steps(pg_engine, run_id) == list(range(1, 9))  # 8 steps, each once
    refused = f"run {run_id} attempt 1: not queued at this attempt"
    wait_for(lambda: worker.output().count(refused) == 2, 30, "both duplicates to be refused")
    assert [p.name for p in (data_dir / "logs" / run_id).iterdir()] == ["attempt-1.log"]  # one trainer


def test_stop_while_queued_means_it_never_starts(
    scaleout: ProcessKeeper, scaleout_api: Api, data_dir: Path
) -> None:
    run_id = scaleout_api.submit(tiny_config())  # no worker yet: the message waits in Redis
    assert scaleout_api.stop(run_id)["status"] == "stopped"
    worker = scaleout.worker()
    refused = f"run {run_id} attempt 1: not queued at this attempt"
    wait_for(lambda: refused in worker.output(), 30, "the worker to consume and refuse the message")
    assert scaleout_api.run(run_id)["status"] == "stopped"
    assert not (data_dir / "logs" / run_id).exists()


def test_stop_while_running_checkpoints_and_ends_stopped(
    scaleout: ProcessKeeper, scaleout_api: Api, pg_engine: Engine, data_dir: Path
) -> None:
    scaleout.worker()
    run_id = scaleout_api.submit(tiny_config("optim.max_steps=200"))
    scaleout_api.wait_step(run_id, 2, 120)
    scaleout_api.stop(run_id)
    run = scaleout_api.wait(run_id, FINAL, 60)
    assert run["status"] == "stopped" and 2 <= run["step"] < 200
    folder = data_dir / "checkpoints" / run_id
    assert run_row(pg_engine, run_id).checkpoint_path == str(folder) and any(folder.iterdir())
    assert loss_steps(pg_engine, run_id) == list(range(1, run["step"] + 1))


def test_kill_9_of_the_trainer_like_an_oom_kill_requeues_it_from_its_checkpoint(
    scaleout: ProcessKeeper, scaleout_api: Api, pg_engine: Engine, data_dir: Path
) -> None:
    """The kernel's OOM killer sends SIGKILL: with a checkpoint recorded (recorded as it is written),
    the run goes back to the queue at attempt 2, the cause in its message, and resumes to the end."""
    scaleout.worker()
    run_id = scaleout_api.submit(tiny_config("optim.max_steps=120", "checkpoint_every=2"))
    scaleout_api.wait_step(run_id, 4, 120)
    wait_for(lambda: run_row(pg_engine, run_id).checkpoint_path is not None, 30, "a recorded checkpoint")
    (pid,) = trainer_pids(data_dir, run_id)
    os.kill(pid, signal.SIGKILL)
    run = scaleout_api.wait(run_id, FINAL, 180)
    assert (run["status"], run["attempt"]) == ("succeeded", 2), run["error"]
    assert loss_steps(pg_engine, run_id) == list(range(1, 121))  # every step once, none lost or repeated
    log = (data_dir / "logs" / run_id / "attempt-2.log").read_text()
    assert "resuming from the checkpoint" in log


def test_kill_9_of_the_trainer_on_its_last_attempt_fails_the_run_and_keeps_its_rows(
    scaleout: ProcessKeeper, scaleout_api: Api, pg_engine: Engine, data_dir: Path
) -> None:
    scaleout.worker(ALIGNSCOPE_MAX_ATTEMPTS="1")
    run_id = scaleout_api.submit(tiny_config("optim.max_steps=200", "checkpoint_every=2"))
    scaleout_api.wait_step(run_id, 4, 120)
    (pid,) = trainer_pids(data_dir, run_id)
    os.kill(pid, signal.SIGKILL)
    run = scaleout_api.wait(run_id, FINAL, 30)
    assert run["status"] == "failed" and "killed by signal 9" in run["error"]
    steps = loss_steps(pg_engine, run_id)
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 4  # flushed rows kept, once each
    assert run_row(pg_engine, run_id).checkpoint_path == str(data_dir / "checkpoints" / run_id)


def test_kill_9_of_the_whole_worker_is_requeued_from_the_checkpoint(
    scaleout: ProcessKeeper, scaleout_api: Api, pg_engine: Engine, data_dir: Path
) -> None:
    first = scaleout.worker()
    # long enough that it is still training when the checkpoint is seen recorded (64 steps once were not)
    run_id = scaleout_api.submit(tiny_config("optim.max_steps=200", "checkpoint_every=4"))
    scaleout_api.wait_step(run_id, 4, 120)
    recorded = lambda: run_row(pg_engine, run_id).checkpoint_path is not None  # noqa: E731
    wait_for(recorded, 30, "the checkpoint to be recorded")
    os.killpg(first.process.pid, signal.SIGKILL)  # worker, supervisor thread and trainer at once
    first.process.wait()
    wait_for(lambda: not trainer_pids(data_dir, run_id), 10, "the trainer to die with its worker")
    assert scaleout_api.run(run_id)["status"] == "running"  # nobody noticed yet
    scaleout.worker(ALIGNSCOPE_STALE_AFTER_S="8")  # its reconciler re-queues, it resumes
    run = scaleout_api.wait(run_id, FINAL, 180)
    assert (run["status"], run["attempt"]) == ("succeeded", 2), run["error"]
    assert loss_steps(pg_engine, run_id) == list(range(1, 201))
    assert (data_dir / "logs" / run_id / "attempt-2.log").read_text().count("Traceback") == 0


def test_kill_9_of_the_worker_alone_releases_its_orphaned_trainers_run_and_another_worker_resumes_it(
    scaleout: ProcessKeeper, scaleout_api: Api, pg_engine: Engine, data_dir: Path
) -> None:
    first = scaleout.worker()
    run_id = scaleout_api.submit(tiny_config("optim.max_steps=200", "checkpoint_every=0"))
    scaleout_api.wait_step(run_id, 4, 120)
    assert len(trainer_pids(data_dir, run_id)) == 1
    os.kill(first.process.pid, signal.SIGKILL)  # the worker's pid only: its trainer is orphaned
    first.process.wait()
    wait_for(lambda: not trainer_pids(data_dir, run_id), 20, "the orphaned trainer to release the run")
    row = run_row(pg_engine, run_id)
    assert (row.status, row.attempt) == ("queued", 1)  # released, not failed and not training on
    assert row.checkpoint_path == str(data_dir / "checkpoints" / run_id)  # written at the release
    log = (data_dir / "logs" / run_id / "attempt-1.log").read_text()
    assert f"the supervising worker (pid {first.process.pid}) is gone" in log
    scaleout.worker()  # a reconciler re-sends the released run's task; this worker resumes it
    run = scaleout_api.wait(run_id, FINAL, 180)
    assert (run["status"], run["attempt"], run["step"]) == ("succeeded", 1, 200), run["error"]
    assert loss_steps(pg_engine, run_id) == list(range(1, 201))  # each step once


def test_a_redis_restart_mid_run_loses_nothing(
    scaleout: ProcessKeeper, scaleout_api: Api, pg_engine: Engine
) -> None:
    scaleout.worker()
    run_id = scaleout_api.submit(tiny_config("optim.max_steps=20"))
    scaleout_api.wait_step(run_id, 3, 120)
    try:
        subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False, timeout=10)
        time.sleep(2)
    finally:
        ensure_redis()
    run = scaleout_api.wait(run_id, FINAL, 120)
    assert (run["status"], run["attempt"]) == ("succeeded", 1), run["error"]
    assert loss_steps(pg_engine, run_id) == list(range(1, 21))
    after = scaleout_api.submit(tiny_config("optim.max_steps=2"))  # the worker consumes again
    assert scaleout_api.wait(after, FINAL, 120)["status"] == "succeeded"


def test_postgres_refusing_connections_for_20_s_is_ridden_out(
    scaleout: ProcessKeeper, scaleout_api: Api, pg_engine: Engine, pg_database_url: str
) -> None:
    scaleout.worker()
    run_id = scaleout_api.submit(tiny_config("optim.max_steps=120"))  # still training when cut off
    scaleout_api.wait_step(run_id, 3, 120)
    name = make_url(pg_database_url).database
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        try:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
            began = time.time()
            time.sleep(20)
        finally:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        ended = time.time()
    run = scaleout_api.wait(run_id, FINAL, 150)
    assert (run["status"], run["attempt"]) == ("succeeded", 1), run["error"]
    assert loss_steps(pg_engine, run_id) == list(range(1, 121))
    times = [wall_time for _, wall_time in loss_points(pg_engine, run_id)]
    assert any(began < t < ended for t in times)  # trained during the outage, rows back-filled
