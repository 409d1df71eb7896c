"""A plain ``celery -A worker.jobs.celery_app worker`` (not ``alignscope worker``) shuts down like ours: the
first SIGTERM asks the running work to end cleanly, a second kills it at once instead of waiting
for the grace period (30 s for a trainer, 60 s for an experiment command). Real processes on the
embedded broker (SQLite, ``filesystem://``): a run and an experiment group at once (concurrency 2),
both stuck (SIGSTOP) so that neither can act on the first request."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from backend.storage import experiment_groups as groups
from backend.storage import runs
from backend.storage.db import init_db
from tests.integration.conftest import ProcessKeeper, run_row, tiny_config, trainer_pids, wait_for
from tests.integration.test_experiment_group_recovery import LONG_TOY, command_pids, group_row

pytestmark = pytest.mark.slow
CELERY = [sys.executable, "-m", "celery", "-A", "worker.jobs.celery_app", "worker", "--pool=threads",
          "--concurrency=2", "--prefetch-multiplier=1", "--without-mingle", "--without-gossip",
          "--without-heartbeat", "--loglevel=info"]  # fmt: skip
SETTINGS = {  # lost messages sent again at once; no heartbeat goes stale during the test
    "ALIGNSCOPE_RESEND_AFTER_S": "1",
    "ALIGNSCOPE_RECONCILE_EVERY_S": "0.5",
    "ALIGNSCOPE_STALE_AFTER_S": "600",
}


def test_a_second_sigterm_kills_the_trainer_and_the_experiment_at_once(
    keeper: ProcessKeeper, data_dir: Path, tmp_path: Path
) -> None:
    engine = init_db(f"sqlite:///{data_dir / 'alignscope.db'}")  # a plain worker does not migrate
    spec = tmp_path / "long-toy.yaml"
    spec.write_text(json.dumps(LONG_TOY))
    worker = keeper.start("celery", CELERY, **SETTINGS)
    wait_for(lambda: " ready." in worker.output() or worker.process.poll() is not None, 60, "the worker")
    assert worker.process.poll() is None, worker.output()
    config = tiny_config("optim.max_steps=120", "checkpoint_every=2")  # long enough to be caught mid-run
    with engine.begin() as conn:  # rows without messages: the worker's reconciler sends both tasks
        assert groups.create_group(conn, "stuck", str(spec), "t", False, None, 2)
        run_id = runs.create_run(conn, json.dumps(config), "plain", None, None)
    (command,) = wait_for(lambda: command_pids(data_dir), 60, "the experiment command")
    os.kill(command, signal.SIGSTOP)  # an experiment deep in a long step: it cannot act on SIGINT
    recorded = lambda: (r := run_row(engine, run_id)).checkpoint_path is not None and (r.step or 0) >= 2  # noqa: E731
    wait_for(recorded, 120, "the run's checkpoint to be recorded")
    (trainer,) = trainer_pids(data_dir, run_id)
    os.kill(trainer, signal.SIGSTOP)  # the same for the trainer and SIGTERM
    signalled = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # two signals, not one coalesced
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(30) == 0
    assert time.monotonic() - signalled < 10  # not the grace periods
    output = worker.output()
    assert "1 trainer(s) killed" in output and "trainer ended by signal 9 during shutdown" in output
    row = run_row(engine, run_id)
    assert (row.status, row.attempt, row.message) == ("queued", 1, runs.RELEASED)  # from its checkpoint
    stuck = group_row(engine, "stuck")
    assert stuck.status == "failed" and stuck.error.startswith("the experiment was killed by signal 9")
    assert "alignscope experiment --summarize stuck" in stuck.error
    engine.dispose()
