"""Experiment groups are never lost or stuck: real ``alignscope worker`` processes on the embedded
broker (SQLite, ``filesystem://``), real signals, no mocks.

- A queued group whose ``experiments.run`` message was lost (the row exists, the broker holds
  nothing) is sent again by the worker's reconciler after ALIGNSCOPE_RESEND_AFTER_S, and run.
- A worker SIGKILLed while its group trains: the experiment command dies with it (no orphan keeps
  training), the group's heartbeat stops, and the next worker's reconciler marks the group failed
  (its run too) once the heartbeat is ALIGNSCOPE_STALE_AFTER_S old.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from backend.storage import experiment_groups as groups
from backend.storage import runs
from backend.storage.db import init_db
from tests.integration.conftest import ProcessKeeper, pids_using, wait_for

pytestmark = pytest.mark.slow
FAST = {"ALIGNSCOPE_RESEND_AFTER_S": "1", "ALIGNSCOPE_RECONCILE_EVERY_S": "0.5"}
LONG_TOY = {
    "name": "long-toy",
    "title": "a toy experiment that trains for a long time",
    "summary": "toy",
    "base": {
        "model": {"source": "toy", "toy": {"scenario": "s1", "hidden": 16, "sft_steps": 20}},
        "data": {"source": "toy", "shuffle": False},
        "optim": {"lr": 0.001, "batch_size": 16, "micro_batch_size": 16, "max_steps": 500_000},
        "log_every": 5,
    },
    "runs": [{"label": "s1"}, {"label": "s2", "set": {"model": {"toy": {"scenario": "s2"}}}}],
}


@pytest.fixture
def engine(data_dir: Path):
    engine = init_db(f"sqlite:///{data_dir / 'alignscope.db'}")
    yield engine
    engine.dispose()


def group_row(engine: Engine, group: str) -> groups.GroupRow:
    with engine.connect() as conn:
        row = groups.get_group(conn, group)
    assert row is not None
    return row


def queue_without_message(engine: Engine, group: str, experiment: str) -> None:
    """The row the API creates, its ``experiments.run`` message lost."""
    with engine.begin() as conn:
        assert groups.create_group(conn, group, experiment, "t", False, None, 2)


def command_pids(data_dir: Path) -> list[int]:
    """This test's experiment command processes (alive or not yet reaped)."""
    found = []
    for pid in pids_using(data_dir):
        try:
            if b"worker.experiments" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_group_whose_message_was_lost_is_sent_again_and_run(keeper: ProcessKeeper, engine: Engine) -> None:
    worker = keeper.worker(**FAST)
    queue_without_message(engine, "lost-1", "no-such-preset")  # the command fails at once: no torch
    done = wait_for(lambda: (g := group_row(engine, "lost-1")).status == "failed" and g, 60, "the group")
    assert "exited with status 2" in done.error and "unknown experiment 'no-such-preset'" in done.error
    output = worker.output()
    assert "group lost-1: task sent by the reconciler" in output
    assert output.count("group lost-1: experiment pid") == 1  # claimed once, however often it was sent


def test_a_killed_workers_group_fails_once_its_heartbeat_is_stale_and_leaves_no_orphan(
    keeper: ProcessKeeper, engine: Engine, data_dir: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "long-toy.yaml"
    spec.write_text(json.dumps(LONG_TOY))  # JSON is YAML
    first = keeper.worker(**FAST)
    queue_without_message(engine, "doomed", str(spec))

    def training() -> runs.RunRow | None:
        with engine.connect() as conn:
            found = runs.list_runs(conn, group="doomed")
        return next((r for r in found if r.status == "running" and (r.step or 0) >= 5), None)

    run = wait_for(training, 120, "the group's first run to train")
    (command,) = command_pids(data_dir)
    beat = group_row(engine, "doomed").updated_at
    wait_for(lambda: group_row(engine, "doomed").updated_at > beat, 10, "the group's heartbeat (every 2 s)")
    os.kill(first.process.pid, signal.SIGKILL)
    assert first.process.wait(10) == -signal.SIGKILL
    wait_for(lambda: not alive(command), 10, "the experiment command to die with its worker")
    assert group_row(engine, "doomed").status == "running"  # nobody has noticed yet
    second = keeper.worker(ALIGNSCOPE_STALE_AFTER_S="5", ALIGNSCOPE_MAX_ATTEMPTS="1", **FAST)
    failed = wait_for(lambda: (g := group_row(engine, "doomed")).status == "failed" and g, 30, "the failure")
    assert failed.error == groups.HEARTBEAT_LOST.format(group="doomed")
    assert "alignscope experiment --summarize doomed" in failed.error

    def run_ended() -> runs.RunRow | None:
        with engine.connect() as conn:
            row = runs.get_run(conn, run.id)
        return row if row is not None and row.status != "running" else None

    # the run's own heartbeat may be a moment younger than the group's: a later pass fails it
    ended = wait_for(run_ended, 10, "the group's running run to end")
    assert (ended.status, ended.error) == ("failed", runs.HEARTBEAT_LOST)
    assert "experiment pid" not in second.output()  # nothing ran it again
    log = (data_dir / "logs" / "experiments" / "doomed.log").read_text()
    assert f"the worker (pid {first.process.pid}) that started this experiment is gone" in log
