"""The supervisor: one claimed attempt of a run, trained in its own process and watched to the end.

The Celery task calls ``supervise``. It claims the run row (a conditional UPDATE: a duplicate
delivery does nothing), starts ``python -m worker.jobs.trainer RUN_ID ATTEMPT`` (under
``torch.distributed.run --standalone --nproc-per-node N`` when the run asks for N processes) in the
worker's process group, with its output in ``<data_dir>/logs/<run_id>/attempt-<n>.log``, and polls it:

- every ``heartbeat_s`` it renews the run's heartbeat (a long model load is not a dead worker) and
  records a checkpoint as soon as the trainer's folder holds one, so the reconciler can resume from it;
- when the worker shuts down (``shutdown`` is set) it sends SIGTERM to the trainer, which finishes
  its step, checkpoints, flushes its rows and RELEASES the run (``runs.release_run``: back to queued
  at the same attempt); SIGKILL follows after ``grace_s``, or at once on a second shutdown request
  (``children.kill_all``);
- when the run stops being this attempt's (re-queued, deleted) for ``grace_s``, it ends the trainer.

A task delivered once the worker is shutting down claims nothing: the run stays queued and its task
is sent again for the next worker (``_pass_on``).

The trainer records its own outcome. After it exits the supervisor reads the row:

- queued at this attempt: released → the task is sent again (``wake``), so another worker, or this
  one restarted, resumes it at once;
- claimed again meanwhile (``started_at`` differs: a same-attempt claim after a release) or at
  another attempt: no longer ours, left alone;
- still running and the trainer died by a signal during a worker shutdown (SIGTERM before its
  handlers were installed, a second Ctrl-C, SIGKILL after ``grace_s``): the trainer is gone, so the
  supervisor releases the run itself when it can resume (a recorded checkpoint, or no step trained);
  otherwise, or when the trainer was killed by SIGINT/SIGTERM from elsewhere, it is left running for
  the reconciler (re-queued with attempt + 1 once its heartbeat is stale, or marked failed);
- any other death (a crash, SIGKILL, out of memory) with a recorded checkpoint (the engine records
  it as it writes one) → re-queued at attempt + 1 while attempts remain (``max_attempts``), the cause
  in the run's message, its task sent again: it resumes from the checkpoint;
- otherwise → failed, with the tail of the trainer's output.

Database outages are ridden out: a failed heartbeat is logged and retried on the next tick.
"""

from __future__ import annotations

import logging
import signal
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
from contracts.logs import attempt_log_path
from worker.jobs import presence, warm_trainer
from worker.jobs.children import Child, last_error_line
from worker.jobs.enqueue import TaskEnqueuer

log = logging.getLogger(__name__)
UNAVAILABLE = (OperationalError, InterfaceError)
INTERRUPTED = (-signal.SIGINT, -signal.SIGTERM)
T = TypeVar("T")
Wake = Callable[[str, int, RunConfig], None]


@dataclass(frozen=True)
class SupervisorOptions:
    """data_dir: the deployment's data folder (checkpoints, logs); gpus: GPUs this worker offers a
    run (0 = no limit is checked); poll_s / heartbeat_s: watch and heartbeat periods; grace_s: how
    long a trainer may take to exit after SIGTERM, or to notice it lost the run; max_attempts:
    attempts per run (ALIGNSCOPE_MAX_ATTEMPTS), for a trainer that dies with a checkpoint recorded."""

    data_dir: Path
    gpus: int = 0
    poll_s: float = 0.5
    heartbeat_s: float = 2.0
    grace_s: float = 30.0
    max_attempts: int = 3


def checkpoint_dir(data_dir: Path, run_id: str) -> Path:
    """The trainer's checkpoint folder (``worker.jobs.trainer.checkpoint_dir``, which imports torch)."""
    return data_dir / "checkpoints" / run_id


def log_path(data_dir: Path, run_id: str, attempt: int) -> Path:
    """Where the trainer's stdout and stderr of one attempt are written (the API serves it)."""
    return attempt_log_path(data_dir, run_id, attempt)


def trainer_argv(run_id: str, attempt: int, num_processes: int) -> list[str]:
    """The trainer's command line: one process, or ``num_processes`` under torchrun."""
    module = ["-m", "worker.jobs.trainer", run_id, str(attempt)]
    if num_processes <= 1:
        return [sys.executable, *module]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={num_processes}"]
    return [sys.executable, *launcher, *module]


def supervise(
    engine: Engine,
    run_id: str,
    attempt: int,
    options: SupervisorOptions,
    shutdown: threading.Event,
    wake: Wake | None = None,
) -> str:
    """Claim, train and watch ``run_id`` at ``attempt``. Returns what happened: "not claimed",
    "released", "interrupted", "superseded", "deleted", "failed" (recorded here) or the status the
    trainer recorded. ``wake`` re-sends the task of a released run (default: the worker's Celery app)."""
    wake = wake or _send_task
    if shutdown.is_set():
        return _pass_on(engine, run_id, attempt, wake)
    if (reason := presence.declines(engine, run_id, attempt)) is not None:
        log.info("run %s attempt %d: left queued for another worker (%s)", run_id, attempt, reason)
        return "not claimed"  # still queued: the reconciler sends its task again
    with engine.begin() as conn:
        if not runs.claim_run(conn, run_id, attempt):
            log.info("run %s attempt %d: not queued at this attempt; nothing to do", run_id, attempt)
            return "not claimed"
        claimed = runs.get_run(conn, run_id)
    assert claimed is not None
    try:
        config = RunConfig.model_validate_json(claimed.config)
    except ValidationError as exc:
        return _fail(engine, run_id, attempt, f"the stored config is invalid: {exc}")
    processes = config.num_processes
    on_gpu = config.device != "cpu" and config.model.source != "toy"
    if options.gpus and on_gpu and processes > options.gpus:
        message = f"the run asks for {processes} processes but this worker offers {options.gpus} GPUs"
        return _fail(engine, run_id, attempt, message)
    output = log_path(options.data_dir, run_id, attempt)
    try:
        trainer = warm_trainer.start_trainer(
            run_id, attempt, processes, trainer_argv(run_id, attempt, processes), output
        )
    except OSError as exc:
        return _fail(engine, run_id, attempt, f"could not start the trainer: {exc}")
    log.info("run %s attempt %d: trainer pid %d (%s)", run_id, attempt, trainer.pid, output)
    try:
        with presence.holding(run_id):
            code = _watch(engine, run_id, attempt, trainer, options, shutdown)
    finally:
        trainer.forget()
        if not shutdown.is_set():
            warm_trainer.refill()
    ended = _Ended(code, shutdown.is_set(), claimed.started_at)
    outcome = _outcome(engine, run_id, attempt, ended, trainer, options.max_attempts)
    if outcome == "released":
        wake(run_id, attempt, config)
        log.warning("run %s attempt %d: released to the queue; task sent again", run_id, attempt)
    elif outcome == "requeued":
        wake(run_id, attempt + 1, config)
    return outcome


def _pass_on(engine: Engine, run_id: str, attempt: int, wake: Wake) -> str:
    """A task delivered while this worker shuts down (Celery's loop for the embedded broker drains
    once more after the shutdown began, and may take the very wake-up this worker just sent): the run
    stays queued and its task is sent again for the next worker. Returns "not claimed"."""
    row = _retry(lambda: _read(engine, run_id))
    if row is None or (row.status, row.attempt) != ("queued", attempt):
        return "not claimed"
    try:
        config = RunConfig.model_validate_json(row.config)
    except ValidationError:
        return "not claimed"  # a claim would fail it; the next worker does
    wake(run_id, attempt, config)
    log.info("run %s attempt %d: worker shutting down; task sent again, run left queued", run_id, attempt)
    return "not claimed"


def _send_task(run_id: str, attempt: int, config: RunConfig) -> None:
    """Send the run's task again through the worker's Celery app (embedded broker included)."""
    TaskEnqueuer().enqueue(run_id, attempt, config)


def _watch(
    engine: Engine,
    run_id: str,
    attempt: int,
    trainer: Child,
    options: SupervisorOptions,
    shutdown: threading.Event,
) -> int:
    """Poll until the trainer exits; returns its exit code (negative: the signal that killed it)."""
    folder = checkpoint_dir(options.data_dir, run_id)
    beat = _Heartbeat(engine, run_id, attempt, folder)
    next_beat = time.monotonic()
    while trainer.running():
        now = time.monotonic()
        if now >= next_beat:
            next_beat = now + options.heartbeat_s
            lost_for = beat.renew()
            if lost_for is not None and lost_for > options.grace_s and trainer.stopping_since is None:
                log.warning("run %s attempt %d: no longer ours; ending the trainer", run_id, attempt)
                trainer.stop(signal.SIGTERM)
        if shutdown.is_set() and trainer.stopping_since is None:
            log.warning("run %s attempt %d: worker shutting down; ending the trainer", run_id, attempt)
            trainer.stop(signal.SIGTERM)
        if trainer.stopping_since is None:
            shutdown.wait(options.poll_s)
        elif trainer.overdue(options.grace_s):
            trainer.kill()
        else:
            time.sleep(options.poll_s)
    beat.record_checkpoint()
    return trainer.wait()


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


@dataclass(frozen=True)
class _Ended:
    """How the trainer ended: exit ``code`` (negative: the killing signal), whether the worker was
    shutting down, and the ``started_at`` of this supervisor's claim (tells a later claim of the
    same attempt, after a release, from ours)."""

    code: int
    shutting_down: bool
    claimed_at: float | None


def _outcome(
    engine: Engine, run_id: str, attempt: int, ended: _Ended, trainer: Child, max_attempts: int
) -> str:
    """Record the outcome of a trainer that exited without recording one (see the module docstring)."""
    row = _retry(lambda: _read(engine, run_id))
    if row is None:
        return "deleted"
    if row.attempt != attempt or row.started_at != ended.claimed_at:
        return "superseded"
    if row.status == "queued":
        return "released"  # by the trainer, after its checkpoint
    if row.status != "running":
        return row.status
    code = ended.code
    resumable = row.checkpoint_path is not None or row.step is None
    if ended.shutting_down and code < 0 and resumable and _retry(lambda: _release(engine, run_id, attempt)):
        log.warning("run %s attempt %d: trainer ended by signal %d during shutdown", run_id, attempt, -code)
        return "released"
    if code in INTERRUPTED or (ended.shutting_down and code < 0):
        log.warning("run %s attempt %d: trainer interrupted; left to the reconciler", run_id, attempt)
        return "interrupted"
    how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    if code == -signal.SIGKILL:
        how += " (SIGKILL: out of memory, or killed)"
    if _retry(lambda: _requeue(engine, run_id, attempt, f"the trainer {how}", max_attempts)):
        log.warning("run %s attempt %d: trainer %s; re-queued from its checkpoint", run_id, attempt, how)
        return "requeued"
    tail = trainer.tail()
    log.error("run %s attempt %d: the trainer %s; the end of its log:\n%s", run_id, attempt, how, tail)
    cause = last_error_line(tail)
    error = f"the trainer {how} without recording an outcome" + (f" ({cause})" if cause else "")
    return _fail(engine, run_id, attempt, f"{error}; the attempt's log has the details")


def _requeue(engine: Engine, run_id: str, attempt: int, cause: str, max_attempts: int) -> bool:
    with engine.begin() as conn:
        return runs.requeue_attempt(conn, run_id, attempt, cause, max_attempts)


def _release(engine: Engine, run_id: str, attempt: int) -> bool:
    with engine.begin() as conn:
        return runs.release_run(conn, run_id, attempt)


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
