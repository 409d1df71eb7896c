"""The trainer process: one run's attempt, from the run row to its outcome.

``python -m worker.jobs.trainer RUN_ID ATTEMPT`` is what the run supervisor starts (and what
``torchrun`` wraps for several processes); ``worker.jobs.in_process`` calls ``execute`` here. The
run row must already be claimed (status running, this attempt). An attempt ends finished (succeeded |
failed), stopped by the user (the run's stop flag → checkpoint → "stopped"), or released by a worker
shutdown (SIGTERM/SIGINT → checkpoint → back to queued): the signal protocol is
docs/decisions/0002-trainer-signals.md.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
import transformers
from sqlalchemy.engine import Engine

from backend.settings import get_settings
from backend.storage import runs
from backend.storage.db import make_engine
from backend.storage.fencing import StaleAttempt
from contracts.config import RunConfig
from contracts.deployment import Allowed, ConfigRefused, refusals
from worker.engine.checkpoint import has_checkpoint
from worker.engine.loop import RunSummary, train
from worker.engine.sinks import ConsoleSink, TeeSink
from worker.jobs.children import WORKER_ENV, supervising_worker_pid, watch_parent
from worker.jobs.db_sink import DbSink


def environment(config: RunConfig) -> dict[str, object]:
    """Versions, device and seed recorded with every run."""
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "device": torch.cuda.get_device_name(0) if cuda and config.device != "cpu" else "cpu",
        "num_processes": config.num_processes,
        "seed": config.seed,
        "worker": os.environ.get(WORKER_ENV) or f"{socket.gethostname()}:{os.getpid()}",
    }


class CheckpointNotShared(RuntimeError):
    """The run has a recorded checkpoint that this worker's data dir does not hold."""


def checkpoint_dir(run_id: str) -> Path:
    """Where a run's checkpoint lives (under the data dir)."""
    return Path(get_settings().data_dir) / "checkpoints" / run_id


def execute(
    engine: Engine,
    run_id: str,
    attempt: int,
    console: bool = False,
    shutdown: Callable[[], bool] = lambda: False,
    allowed: Allowed | None = None,
) -> RunSummary:
    """Trains the claimed run ``run_id`` at ``attempt`` and records its outcome in the store.

    console: progress bar, and Ctrl-C stops the run (a user stop). shutdown: true once this process
    was asked to end (``ShutdownSignals``); the loop then checkpoints and the run is released.
    allowed: what this worker's deployment lets a run reach (contracts.deployment); a config that
    reaches beyond it fails before anything is read (None: the operator's own CLI run)."""
    with engine.begin() as conn:
        row = runs.get_run(conn, run_id)
    if row is None:
        raise LookupError(f"run {run_id} does not exist")
    config = RunConfig.model_validate_json(row.config)
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 writes the store
    if main_rank:
        with engine.begin() as conn:
            runs.set_environment(conn, run_id, attempt, json.dumps(environment(config)))
    db_sink = DbSink(engine, run_id, attempt, total_steps=config.optim.max_steps)
    bar = ConsoleSink(config.optim.max_steps, config.name) if console else None
    interrupted = _interrupt_flag() if console else shutdown
    folder = checkpoint_dir(run_id)
    resuming = has_checkpoint(folder)
    if resuming:
        print(f"run {run_id} attempt {attempt}: resuming from the checkpoint in {folder}", file=sys.stderr)
    try:
        if allowed is not None and (found := refusals(config, allowed)):
            raise ConfigRefused(found)
        if row.checkpoint_path and not resuming:
            raise CheckpointNotShared(
                f"run {run_id} resumes from a checkpoint ({row.checkpoint_path}) but {folder} holds none: "
                "the API and every worker must share one data dir (ALIGNSCOPE_DATA_DIR, e.g. on NFS)"
            )
        summary = train(
            config,
            TeeSink(db_sink, bar) if bar else db_sink,
            should_stop=lambda: interrupted() or db_sink.stop_requested(),
            checkpoint_dir=folder,
        )
    except StaleAttempt:
        raise
    except Exception as exc:  # the run failed: record why (the message), keep its metrics
        traceback.print_exc(file=sys.stderr)  # the traceback goes to the attempt's log, not to users
        summary = RunSummary("failed", 0, error=error_message(exc))
    finally:
        if bar:
            bar.close()
    if not main_rank:
        return summary
    db_sink.close()
    _record(engine, run_id, attempt, summary, release=not console and shutdown())
    return summary


def error_message(exc: BaseException, limit: int = 2000) -> str:
    """What a user sees of a failure: the exception's type and message, without the traceback (its
    frames name server paths; it stays in the worker's log of the attempt)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _record(engine: Engine, run_id: str, attempt: int, summary: RunSummary, release: bool) -> None:
    """Record how the attempt ended, after its rows were flushed: its checkpoint, then either the
    release (a shutdown stopped it) or its final status. A user stop requested meanwhile wins over
    the release (``release_run`` refuses), so the run then ends "stopped"."""
    with engine.begin() as conn:
        if summary.checkpoint:
            runs.set_checkpoint(conn, run_id, attempt, summary.checkpoint)
        stopped = summary.status == "stopped" and summary.checkpoint is not None
        if release and stopped and runs.release_run(conn, run_id, attempt):
            return
        runs.finish_run(conn, run_id, attempt, summary.status, summary.error)


def _interrupt_flag() -> Callable[[], bool]:
    """Ctrl-C sets a flag the loop polls (it then checkpoints and stops); a second Ctrl-C aborts."""
    state = {"hit": False}

    def handler(signum: int, frame: object) -> None:
        if state["hit"]:
            raise KeyboardInterrupt
        state["hit"] = True
        print("\nstopping after this step (checkpoint); Ctrl-C again to abort", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    return lambda: state["hit"]


class ShutdownSignals:
    """SIGTERM and SIGINT in the trainer process: the first asks the loop to stop after its step (it
    then checkpoints and the run is released); the same signal again, ``repeat_s`` or more after the
    first, ends the process at once, killed by that signal. SIGTERM and SIGINT count separately and
    a repeat within ``repeat_s`` is ignored: a Ctrl-C on the worker's terminal reaches the trainer as
    SIGINT and the supervisor forwards SIGTERM; systemd signals the whole group, then the supervisor
    forwards SIGTERM again. Call the object: True once a signal came."""

    def __init__(self, repeat_s: float = 1.0) -> None:
        self.repeat_s = repeat_s
        self.first: dict[int, float] = {}

    def install(self) -> ShutdownSignals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)
        return self

    def __call__(self) -> bool:
        return bool(self.first)

    def request(self, reason: str) -> None:
        """Ask the loop to stop after its step, as a first SIGTERM does (``reason`` goes to stderr)."""
        if signal.SIGTERM not in self.first:
            self.first[signal.SIGTERM] = time.monotonic()
            os.write(2, f"\n{reason}: stopping after this step to release the run\n".encode())

    def _handle(self, signum: int, frame: object) -> None:
        now = time.monotonic()
        if signum not in self.first:
            self.first[signum] = now
            name = signal.Signals(signum).name
            os.write(2, f"\n{name}: stopping after this step to release the run; again: abort\n".encode())
        elif now - self.first[signum] >= self.repeat_s:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


def watch_supervisor(shutdown: ShutdownSignals, poll_s: float = 1.0) -> threading.Thread | None:
    """Once the worker supervising this trainer (``WORKER_ENV``) is gone — killed without its
    trainers, e.g. ``kill -9`` of its pid —, ask the loop to stop as a SIGTERM would: checkpoint
    after the step, flush, release the run to the queue (where the reconciler of any live worker
    re-sends its task), instead of training on as an orphan that holds its device. Returns the
    watching thread (None outside a supervised trainer)."""
    pid = supervising_worker_pid()
    if pid is None:
        return None
    gone = f"the supervising worker (pid {pid}) is gone"
    return watch_parent(pid, lambda: shutdown.request(gone), poll_s=poll_s)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the trainer process: RUN_ID ATTEMPT."""
    args = sys.argv[1:] if argv is None else argv
    run_id, attempt = args[0], int(args[1])
    shutdown = ShutdownSignals().install()
    watch_supervisor(shutdown)
    engine = make_engine(get_settings().database_url)
    try:
        summary = execute(engine, run_id, attempt, shutdown=shutdown, allowed=get_settings().allowed())
    finally:
        engine.dispose()
    return 0 if summary.status != "failed" else 1


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the store is written and closed: skip the interpreter's teardown (seconds of GC)
