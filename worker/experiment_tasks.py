"""The Celery task ``experiments.run``: one experiment group launched from the API, run by
``alignscope experiment NAME --group GROUP [--quick] [--seeds …]`` in its own process (started as
``python -m worker.cli.experiment_command``, which skips the other commands' imports)
and watched to the end (included by ``worker.tasks.app``, so every ``alignscope worker`` consumes it).

The group's row is the truth: the task claims it (queued → running, a conditional UPDATE, so a
duplicate delivery does nothing); the command records the stages, the runs (ordinary run rows of the
group), the summary and the outcome, and renews the group's heartbeat. When the command dies without
recording its outcome, the task marks the group failed with the tail of its output
(``<data_dir>/logs/experiments/<group>.log``). On worker shutdown the command gets SIGINT (the running
run checkpoints and stops; the group fails with the runs so far summarized), then SIGKILL after
``GRACE_S``, or at once on a second shutdown request (``worker.tasks.ABORT``). The command is told
this worker's pid (``PARENT_ENV``) and dies with it: a SIGKILLed worker leaves no experiment training
on as an orphan; the group's heartbeat then stops and the reconciler marks it failed. The task
occupies its worker slot for the whole experiment (its runs train inside the command, one after
another).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import Engine

from backend.queue import EXPERIMENT_TASK
from backend.settings import get_settings
from backend.storage import experiment_groups
from backend.storage.experiment_groups import GroupRow
from worker.cli.experiment_command import PARENT_ENV
from worker.tasks import ABORT, SHUTDOWN, app, database

log = logging.getLogger(__name__)
GRACE_S = 60.0
POLL_S = 0.5
TAIL_BYTES = 4000


def experiment_argv(group: GroupRow) -> list[str]:
    """The command line that runs ``group`` (its preset, --quick and --seeds from the row)."""
    argv = [sys.executable, "-m", "worker.cli.experiment_command", group.experiment, "--group", group.id]
    if group.quick:
        argv.append("--quick")
    if group.seeds:
        argv += ["--seeds", ",".join(str(seed) for seed in group.seeds)]
    return argv


def log_path(data_dir: Path, group: str) -> Path:
    """Where the command's output for ``group`` is written."""
    return data_dir / "logs" / "experiments" / f"{group}.log"


@app.task(name=EXPERIMENT_TASK, acks_late=True, ignore_result=True)
def run_experiment(group: str) -> str:
    """Run experiment group ``group``; returns what happened (see ``supervise_group``)."""
    return supervise_group(database(), group, get_settings().data_dir, SHUTDOWN, abort=ABORT)


def supervise_group(
    engine: Engine,
    group: str,
    data_dir: Path,
    shutdown: threading.Event,
    poll_s: float = POLL_S,
    abort: threading.Event | None = None,
) -> str:
    """Claim ``group``, run its command and wait for it: "not claimed", "succeeded" or "failed".
    ``shutdown``: end the command cleanly (SIGINT, then SIGKILL after GRACE_S); ``abort``: kill it now."""
    with engine.begin() as conn:
        if not experiment_groups.claim_group(conn, group):
            log.info("group %s: not queued; nothing to do", group)
            return "not claimed"
        row = experiment_groups.get_group(conn, group)
    assert row is not None
    output = log_path(data_dir, group)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with output.open("wb") as sink:
            process = subprocess.Popen(
                experiment_argv(row), stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid())},
            )  # fmt: skip
    except OSError as exc:
        return _fail(engine, group, f"could not start the experiment: {exc}")
    log.info("group %s: experiment pid %d (%s)", group, process.pid, output)
    code = _wait(process, shutdown, abort or threading.Event(), poll_s)
    if code == 0:
        return "succeeded"
    tail = output.read_bytes()[-TAIL_BYTES:].decode(errors="replace")
    if code < 0:
        kept = f"runs finished so far are kept (summarize them: alignscope experiment --summarize {group})"
        return _fail(engine, group, f"the experiment was killed by signal {-code}; {kept}:\n{tail}")
    return _fail(engine, group, f"the experiment exited with status {code}:\n{tail}")


def _wait(
    process: subprocess.Popen[bytes], shutdown: threading.Event, abort: threading.Event, poll_s: float
) -> int:
    """The command's exit code (negative: the killing signal); on ``shutdown`` it gets SIGINT, then
    SIGKILL after GRACE_S or as soon as ``abort`` is set."""
    stopping_since: float | None = None
    while process.poll() is None:
        if shutdown.is_set() and stopping_since is None:
            log.warning("worker shutting down: stopping experiment pid %d", process.pid)
            process.send_signal(signal.SIGINT)
            stopping_since = time.monotonic()
        if stopping_since is None:
            shutdown.wait(poll_s)
        elif abort.is_set() or time.monotonic() - stopping_since > GRACE_S:
            process.kill()
            process.wait()
        else:
            abort.wait(poll_s)
    return process.returncode


def _fail(engine: Engine, group: str, error: str) -> str:
    """Mark the group failed unless the command already recorded its outcome."""
    with engine.begin() as conn:
        experiment_groups.finish_group(conn, group, "failed", error)
    return "failed"
