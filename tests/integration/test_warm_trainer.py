"""The warm spare trainer: the embedded worker keeps one trainer process that has already imported
torch and the engine, started by exec (never a fork of the worker), hands the next one-process run
to it, starts the next spare once that run ends, and leaves no process behind when it stops.
``ALIGNSCOPE_WARM_TRAINER=0`` starts every trainer cold, as before."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.integration.conftest import (
    Api,
    ProcessKeeper,
    free_port,
    pids_using,
    tiny_config,
    trainer_pids,
    wait_for,
)

pytestmark = pytest.mark.slow
FINAL = ("succeeded", "failed", "stopped")


def _spares(data_dir: Path) -> list[int]:
    """Waiting or training warm trainer processes of this test."""
    found = []
    for pid in pids_using(data_dir):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker.jobs.warm_trainer" in argv:
            found.append(pid)
    return found


def _ready(data_dir: Path) -> bool:
    return any("warm trainer ready" in log.read_text() for log in data_dir.glob("logs/spares/*/spare.log"))


def test_a_ready_spare_takes_the_next_run_and_is_replaced(keeper: ProcessKeeper, data_dir: Path) -> None:
    port = free_port()
    serve = keeper.serve(port)
    api = Api(port)
    [spare] = wait_for(lambda: _spares(data_dir), 60, "a spare trainer")
    wait_for(lambda: _ready(data_dir), 120, "the spare to finish its imports")
    with open(f"/proc/{spare}/stat") as handle:  # started by exec from the worker: its own program
        parent = int(handle.read().rsplit(")", 1)[1].split()[1])
    assert Path(f"/proc/{parent}/cmdline").read_bytes() != Path(f"/proc/{spare}/cmdline").read_bytes()

    run_id = api.submit(tiny_config("optim.max_steps=200"))
    api.wait_step(run_id, 1, 60)
    assert trainer_pids(data_dir, run_id) == [spare]  # the spare trains it, its output in the run's log
    api.stop(run_id)
    assert api.wait(run_id, FINAL, 90)["status"] == "stopped"
    assert (data_dir / "logs" / run_id / "attempt-1.log").is_file()

    [next_spare] = wait_for(lambda: [p for p in _spares(data_dir) if p != spare], 60, "the next spare")
    assert next_spare != spare
    assert serve.stop(signal.SIGINT, timeout=60) == 0
    wait_for(lambda: not pids_using(data_dir), 30, "serve, its worker and the spare to exit")


def test_turned_off_every_trainer_starts_cold(keeper: ProcessKeeper, data_dir: Path) -> None:
    port = free_port()
    keeper.serve(port, ALIGNSCOPE_WARM_TRAINER="0")
    api = Api(port)
    run_id = api.submit(tiny_config())
    assert api.wait(run_id, FINAL, 150)["status"] == "succeeded"
    assert _spares(data_dir) == []
