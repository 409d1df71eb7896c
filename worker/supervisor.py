"""The supervisor: one claimed attempt of a run, trained in its own process and watched to the end.

The Celery task calls ``supervise``. It claims the run row (a conditional UPDATE: a duplicate
delivery does nothing), starts ``python -m worker.trainer RUN_ID ATTEMPT`` (under
``torch.distributed.run --standalone --nproc-per-node N`` when the run asks for N processes) in the
worker's process group, with its output in ``<data_dir>/logs/<run_id>/attempt-<n>.log``, and polls it:

- every ``heartbeat_s`` it renews the run's heartbeat (a long model load is not a dead worker) and
  records a checkpoint as soon as the trainer's folder holds one, so the reconciler can resume from it;
- when the worker shuts down (``shutdown`` is set) it sends SIGTERM to the trainer, then SIGKILL
  after ``grace_s``;
- when the run stops being this attempt's (re-queued, deleted) for ``grace_s``, it ends the trainer.

The trainer records its own outcome. When it dies without doing so, the supervisor does:
killed by SIGINT/SIGTERM (a shutdown) → the run is left running for the reconciler, which re-queues
it from its checkpoint once its heartbeat is stale (or marks it failed); any other death (a crash,
SIGKILL, out of memory) → failed, with the tail of the trainer's output as the error.
Database outages are ridden out: a failed heartbeat is logged and retried on the next tick.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from backend.storage import runs
from contracts.config import RunConfig

log = logging.getLogger(__name__)
UNAVAILABLE = (OperationalError, InterfaceError)
INTERRUPTED = (-signal.SIGINT, -signal.SIGTERM)
TAIL_BYTES = 4000
T = TypeVar("T")


@dataclass(frozen=True)
class SupervisorOptions:
    """data_dir: the deployment's data folder (checkpoints, logs); gpus: GPUs this worker offers a
    run (0 = no limit is checked); poll_s / heartbeat_s: watch and heartbeat periods; grace_s: how
    long a trainer may take to exit after SIGTERM, or to notice it lost the run."""

    data_dir: Path
    gpus: int = 0
    poll_s: float = 0.5
    heartbeat_s: float = 2.0
    grace_s: float = 30.0


def checkpoint_dir(data_dir: Path, run_id: str) -> Path:
    """The trainer's checkpoint folder (equals ``worker.trainer.checkpoint_dir``, which imports torch)."""
    return data_dir / "checkpoints" / run_id


def log_path(data_dir: Path, run_id: str, attempt: int) -> Path:
    """Where the trainer's stdout and stderr of one attempt are written."""
    return data_dir / "logs" / run_id / f"attempt-{attempt}.log"


def trainer_argv(run_id: str, attempt: int, num_processes: int) -> list[str]:
    """The trainer's command line: one process, or ``num_processes`` under torchrun."""
    module = ["-m", "worker.trainer", run_id, str(attempt)]
    if num_processes <= 1:
        return [sys.executable, *module]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={num_processes}"]
    return [sys.executable, *launcher, *module]


def supervise(
    engine: Engine, run_id: str, attempt: int, options: SupervisorOptions, shutdown: threading.Event
) -> str:
    """Claim, train and watch ``run_id`` at ``attempt``. Returns what happened: "not claimed",
    "interrupted", "failed" (recorded here) or the status the trainer recorded."""
    with engine.begin() as conn:
        if not runs.claim_run(conn, run_id, attempt):
            log.info("run %s attempt %d: not queued at this attempt; nothing to do", run_id, attempt)
            return "not claimed"
        row = runs.get_run(conn, run_id)
    assert row is not None
    try:
        config = RunConfig.model_validate_json(row.config)
    except ValidationError as exc:
        return _fail(engine, run_id, attempt, f"the stored config is invalid: {exc}")
    processes = config.num_processes
    on_gpu = config.device != "cpu" and config.model.source != "toy"
    if options.gpus and on_gpu and processes > options.gpus:
        message = f"the run asks for {processes} processes but this worker offers {options.gpus} GPUs"
        return _fail(engine, run_id, attempt, message)
    output = log_path(options.data_dir, run_id, attempt)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with output.open("wb") as sink:
            process = subprocess.Popen(
                trainer_argv(run_id, attempt, processes),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
    except OSError as exc:
        return _fail(engine, run_id, attempt, f"could not start the trainer: {exc}")
    log.info("run %s attempt %d: trainer pid %d (%s)", run_id, attempt, process.pid, output)
    code = _watch(engine, run_id, attempt, process, options, shutdown)
    return _outcome(engine, run_id, attempt, code, output)


def _watch(
    engine: Engine,
    run_id: str,
    attempt: int,
    process: subprocess.Popen[bytes],
    options: SupervisorOptions,
    shutdown: threading.Event,
) -> int:
    """Poll until the trainer exits; returns its exit code (negative: the signal that killed it)."""
    folder = checkpoint_dir(options.data_dir, run_id)
    beat = _Heartbeat(engine, run_id, attempt, folder)
    next_beat = time.monotonic()
    stopping_since: float | None = None
    while process.poll() is None:
        now = time.monotonic()
        if now >= next_beat:
            next_beat = now + options.heartbeat_s
            lost_for = beat.renew()
            if lost_for is not None and lost_for > options.grace_s and stopping_since is None:
                log.warning("run %s attempt %d: no longer ours; ending the trainer", run_id, attempt)
                stopping_since = _terminate(process)
        if shutdown.is_set() and stopping_since is None:
            log.warning("run %s attempt %d: worker shutting down; ending the trainer", run_id, attempt)
            stopping_since = _terminate(process)
        if stopping_since is None:
            shutdown.wait(options.poll_s)
        elif now - stopping_since > options.grace_s:
            process.kill()
        else:
            time.sleep(options.poll_s)
    beat.record_checkpoint()
    return process.returncode


def _terminate(process: subprocess.Popen[bytes]) -> float:
    process.send_signal(signal.SIGTERM)
    return time.monotonic()


class _Heartbeat:
    """The supervisor's side of the run row: heartbeat and checkpoint path, tolerant of outages."""

    def __init__(self, engine: Engine, run_id: str, attempt: int, folder: Path) -> None:
        self.engine, self.run_id, self.attempt, self.folder = engine, run_id, attempt, folder
        self.checkpoint_seen = False
        self.lost_at: float | None = None

    def renew(self) -> float | None:
        """Renew the heartbeat; returns for how long (s) the run has not been this attempt's, or None."""
        run_id, attempt, folder = self.run_id, self.attempt, self.folder
        try:
            with self.engine.begin() as conn:
                ours = runs.heartbeat(conn, run_id, attempt)
                if ours and not self.checkpoint_seen and _has_checkpoint(folder):
                    self.checkpoint_seen = runs.set_checkpoint(conn, run_id, attempt, str(folder))
        except UNAVAILABLE as exc:
            log.warning("run %s: heartbeat failed, database unavailable (%s)", run_id, exc)
            return None
        if ours:
            self.lost_at = None
            return None
        self.lost_at = self.lost_at or time.monotonic()
        return time.monotonic() - self.lost_at

    def record_checkpoint(self) -> None:
        """Record the checkpoint folder if the trainer left one (after it exited)."""
        if not self.checkpoint_seen and _has_checkpoint(self.folder):
            _retry(lambda: self._set_checkpoint())

    def _set_checkpoint(self) -> None:
        with self.engine.begin() as conn:
            runs.set_checkpoint(conn, self.run_id, self.attempt, str(self.folder))


def _has_checkpoint(folder: Path) -> bool:
    """The engine writes a checkpoint to a temporary folder and renames it into place, so the
    folder exists only once complete."""
    return folder.is_dir() and any(folder.iterdir())


def _outcome(engine: Engine, run_id: str, attempt: int, code: int, output: Path) -> str:
    """Record the outcome of a trainer that exited without recording one."""
    row = _retry(lambda: _read(engine, run_id))
    if row is None:
        return "deleted"
    if row.attempt != attempt:
        return "superseded"
    if row.status != "running":
        return row.status
    if code in INTERRUPTED:
        log.warning("run %s attempt %d: trainer interrupted; left to the reconciler", run_id, attempt)
        return "interrupted"
    how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return _fail(engine, run_id, attempt, f"the trainer {how} without recording an outcome\n{_tail(output)}")


def _read(engine: Engine, run_id: str) -> runs.RunRow | None:
    with engine.begin() as conn:
        return runs.get_run(conn, run_id)


def _fail(engine: Engine, run_id: str, attempt: int, error: str) -> str:
    log.error("run %s attempt %d failed: %s", run_id, attempt, error)

    def write() -> None:
        with engine.begin() as conn:
            runs.finish_run(conn, run_id, attempt, "failed", error)

    _retry(write)
    return "failed"


def _tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of the trainer's output, decoded leniently."""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - limit))
        return handle.read().decode("utf-8", "replace")


def _retry(action: Callable[[], T], timeout_s: float = 60.0) -> T:
    """Run ``action``, retrying while the database is unavailable for up to ``timeout_s``."""
    deadline, pause = time.monotonic() + timeout_s, 0.5
    while True:
        try:
            return action()
        except UNAVAILABLE:
            if time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
