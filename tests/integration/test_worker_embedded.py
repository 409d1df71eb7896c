"""``alignscope serve`` in its embedded default (SQLite, filesystem broker, a real Celery worker
process it starts itself), driven over HTTP like a new user would."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from backend.storage import runs
from backend.storage.db import make_engine
from tests.integration.conftest import (
    SERVICE_CLI,
    Api,
    ProcessKeeper,
    free_port,
    loss_steps,
    pids_using,
    tiny_config,
    wait_for,
)

pytestmark = pytest.mark.slow
FINAL = ("succeeded", "failed", "stopped")


def test_serve_trains_runs_resends_a_lost_message_guards_its_data_dir_and_stops_on_ctrl_c(
    keeper: ProcessKeeper, data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    serve = keeper.serve(port, full_cli=True, ALIGNSCOPE_RESEND_AFTER_S="2")
    cli = [sys.executable, "-m", SERVICE_CLI, "serve"]
    second = keeper.start("second", [*cli, "--port", str(free_port())])
    exposed = keeper.start("exposed", [*cli, "--host", "0.0.0.0", "--data-dir", str(tmp_path / "other")])
    api = Api(port)
    run_id = api.submit(tiny_config())
    run = api.wait(run_id, FINAL, 150)
    assert (run["status"], run["attempt"], run["step"]) == ("succeeded", 1, 8), run["error"]
    series = api.client.get(f"/runs/{run_id}/metrics", params={"key": "train/loss"}).json()["series"]
    assert series["train/loss"]["steps"] == list(range(1, 9))
    assert second.process.wait(60) == 1 and "is already used by `alignscope serve`" in second.output()
    assert exposed.process.wait(60) == 2 and "without ALIGNSCOPE_API_TOKEN" in exposed.output()
    engine = make_engine(f"sqlite:///{data_dir / 'alignscope.db'}")
    with engine.begin() as conn:  # a queued run whose message never reached the broker
        lost = runs.create_run(conn, json.dumps(tiny_config()), "lost", None, None)
    engine.dispose()
    api.wait(lost, ("running", *FINAL), 60)  # the reconciler sent it again and the worker claimed it
    assert serve.stop(signal.SIGINT, timeout=60) == 0  # Ctrl-C with that run training
    wait_for(lambda: not pids_using(data_dir), 30, "serve, its worker and the trainer to exit")


def test_sigterm_mid_run_ends_every_process_and_the_next_serve_resumes_it(
    keeper: ProcessKeeper, data_dir: Path
) -> None:
    fast = {"ALIGNSCOPE_STALE_AFTER_S": "8", "ALIGNSCOPE_RECONCILE_EVERY_S": "1"}
    port = free_port()
    serve = keeper.serve(port, **fast)
    api = Api(port)
    # long enough to be mid-run when the checkpoint is seen recorded (64 steps once were not)
    run_id = api.submit(tiny_config("optim.max_steps=200", "checkpoint_every=4"))
    api.wait_step(run_id, 4, 150)
    engine = make_engine(f"sqlite:///{data_dir / 'alignscope.db'}")

    def checkpoint_recorded() -> bool:
        with engine.connect() as conn:
            row = runs.get_run(conn, run_id)
        return row is not None and row.checkpoint_path is not None

    wait_for(checkpoint_recorded, 30, "the checkpoint to be recorded")
    assert serve.stop(signal.SIGTERM, timeout=90) == 0
    wait_for(lambda: not pids_using(data_dir), 30, "serve, its worker and the trainer to exit")
    with engine.connect() as conn:
        row = runs.get_run(conn, run_id)
    assert row is not None and (row.status, row.attempt) == ("queued", 1)  # released, checkpoint recorded
    assert row.checkpoint_path == str(data_dir / "checkpoints" / run_id)
    port = free_port()
    keeper.serve(port, **fast)
    run = Api(port).wait(run_id, FINAL, 180)
    assert (run["status"], run["attempt"]) == ("succeeded", 1), run["error"]
    assert loss_steps(engine, run_id) == list(range(1, 201))
    engine.dispose()
