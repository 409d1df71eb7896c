"""The reconciler: makes the broker and the running work agree with the rows of runs and experiment
groups (the rows are the truth; a broker message is only a wake-up). ``start_reconciler`` runs it as a
daemon thread every ALIGNSCOPE_RECONCILE_EVERY_S (default 5 s) in every worker and in ``alignscope
serve``. One pass (``Reconciler.once``):

- runs: ``requeue_stale`` re-queues a run whose heartbeat is older than ALIGNSCOPE_STALE_AFTER_S
  (default 60 s) from its checkpoint with attempt + 1 while attempt < ALIGNSCOPE_MAX_ATTEMPTS
  (default 3), else marks it failed; the task of a re-queued run is sent again;
- experiment groups: a running group whose heartbeat (``updated_at``, renewed every few seconds by
  the ``alignscope experiment`` process running it) is older than the same stale time is marked
  failed (``experiment_groups.fail_stale``; its finished runs are kept, its summary is left to
  ``alignscope experiment --summarize GROUP``: building it imports torch, which this process avoids);
- lost messages: a run or a group queued for more than ALIGNSCOPE_RESEND_AFTER_S (default 30 s)
  while the broker holds fewer waiting messages than there are queued runs and groups together has
  its task (``runs.train`` / ``experiments.run``) sent again. Duplicates are harmless: both claims
  are conditional;
- the embedded broker's delivered messages older than PROCESSED_KEPT_S are deleted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine

from backend.config_files import ConfigError
from backend.experiment_spec import load_experiment, wants_gpu
from backend.queue import DEFAULT_QUEUE, experiment_queue
from backend.settings import Settings, get_settings
from backend.storage import experiment_groups, runs
from backend.storage.db import reader
from contracts.config import RunConfig
from worker.jobs.celery_app import embedded_broker_folders
from worker.jobs.enqueue import TaskEnqueuer

log = logging.getLogger(__name__)
PROCESSED_KEPT_S = 600.0
Key = tuple[str, str, int]  # ("run", run_id, attempt) or ("group", group_id, 0)


class Waker(Protocol):
    """What the reconciler needs of the broker (``worker.jobs.enqueue.TaskEnqueuer``)."""

    def enqueue(self, run_id: str, attempt: int, config: RunConfig) -> None: ...

    def enqueue_experiment(self, group: str, queue: str) -> None: ...

    def waiting(self) -> int | None: ...


@dataclass(frozen=True)
class ReconcilePolicy:
    """every_s: period; stale_after_s: heartbeat age that means dead (runs and groups);
    max_attempts: attempts per run; resend_after_s: how long a queued run or group waits before its
    message counts as possibly lost."""

    every_s: float = 5.0
    stale_after_s: float = 60.0
    max_attempts: int = 3
    resend_after_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ReconcilePolicy:
        def read(name: str, default: float) -> float:
            return float(environ.get(f"ALIGNSCOPE_{name}") or default)

        return cls(
            every_s=read("RECONCILE_EVERY_S", cls.every_s),
            stale_after_s=read("STALE_AFTER_S", cls.stale_after_s),
            max_attempts=int(read("MAX_ATTEMPTS", cls.max_attempts)),
            resend_after_s=read("RESEND_AFTER_S", cls.resend_after_s),
        )


@dataclass
class Pass:
    """What one pass did: runs whose task was sent (run_id, attempt), groups whose task was sent,
    and groups marked failed for a stale heartbeat."""

    runs: list[tuple[str, int]] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    failed_groups: list[str] = field(default_factory=list)


def group_queue(experiment: str) -> str:
    """The queue of an experiment group (as the API chose it); Celery's default one when the preset
    no longer loads (its command then fails the group, naming the problem)."""
    try:
        return experiment_queue(wants_gpu(load_experiment(experiment)))
    except ConfigError:
        return DEFAULT_QUEUE


class Reconciler:
    """Makes the broker agree with the rows (see the module docstring); one ``once()`` per tick."""

    def __init__(
        self,
        engine: Engine,
        enqueuer: Waker,
        policy: ReconcilePolicy,
        processed_folder: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.enqueuer, self.policy = engine, enqueuer, policy
        self.processed_folder = processed_folder
        self.clock = clock
        self._waiting_since: dict[Key, float] = {}

    def once(self) -> Pass:
        """One pass (module docstring); returns what it did."""
        stale_after_s = self.policy.stale_after_s
        with self.engine.begin() as conn:
            requeued = runs.requeue_stale(conn, stale_after_s, self.policy.max_attempts)
            failed = experiment_groups.fail_stale(conn, stale_after_s)
        with reader(self.engine).connect() as conn:
            queued_runs = runs.list_runs(conn, status="queued", limit=10_000)
            queued_groups = experiment_groups.list_groups(conn, limit=10_000, status="queued")
        configs: dict[Key, str] = {("run", r.id, r.attempt): r.config for r in queued_runs}
        experiments: dict[Key, str] = {("group", g.id, 0): g.experiment for g in queued_groups}
        for run_id, attempt in sorted(requeued):
            log.warning("run %s: heartbeat stale; re-queued as attempt %d", run_id, attempt)
        for group in failed:
            log.warning("group %s: heartbeat stale; marked failed", group)
        fresh = {("run", run_id, attempt) for run_id, attempt in requeued}
        done = Pass(failed_groups=failed)
        for key in self._due(configs.keys() | experiments.keys(), fresh):
            kind, name, attempt = key
            if kind == "run":
                self.enqueuer.enqueue(name, attempt, RunConfig.model_validate_json(configs[key]))
                done.runs.append((name, attempt))
            else:
                self.enqueuer.enqueue_experiment(name, group_queue(experiments[key]))
                done.groups.append(name)
        self._prune_processed()
        return done

    def _due(self, queued: set[Key], fresh: set[Key]) -> list[Key]:
        """The queued keys whose task is to be sent now: the ``fresh`` ones (just re-queued), then
        those waiting longer than ``resend_after_s`` when the broker cannot be holding every
        message (it holds fewer than the queued keys that were not just re-queued)."""
        now = self.clock()
        since = {key: self._waiting_since.get(key, now) for key in queued}
        aged = sorted(k for k in queued - fresh if now - since[k] >= self.policy.resend_after_s)
        if aged:
            waiting = self.enqueuer.waiting()
            if waiting is not None and waiting >= len(queued - fresh):
                aged = []  # every queued run and group can still have its message waiting
        due = sorted(queued & fresh) + aged
        for key in due:
            since[key] = now
        self._waiting_since = since
        return due

    def _prune_processed(self) -> None:
        """Delete delivered messages of the embedded broker older than PROCESSED_KEPT_S."""
        if self.processed_folder is None or not self.processed_folder.is_dir():
            return
        cutoff = time.time() - PROCESSED_KEPT_S
        for path in self.processed_folder.iterdir():
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)

    def run(self, stop: threading.Event) -> None:
        """Reconcile every ``policy.every_s`` until ``stop`` is set; errors are logged, not raised."""
        while not stop.wait(self.policy.every_s):
            try:
                done = self.once()
            except Exception:
                log.exception("reconciler pass failed; retrying in %.0f s", self.policy.every_s)
                continue
            for run_id, attempt in done.runs:
                log.info("run %s attempt %d: task sent by the reconciler", run_id, attempt)
            for group in done.groups:
                log.info("group %s: task sent by the reconciler", group)


def start_reconciler(
    engine: Engine, stop: threading.Event, settings: Settings | None = None
) -> threading.Thread:
    """Start the reconciler as a daemon thread of this process (stopped by ``stop``): every worker
    and ``alignscope serve`` run one."""
    settings = settings or get_settings()
    processed = None if settings.broker_url else embedded_broker_folders(settings.data_dir)[1]
    reconciler = Reconciler(engine, TaskEnqueuer(), ReconcilePolicy.from_env(), processed)
    thread = threading.Thread(target=reconciler.run, args=(stop,), name="alignscope-reconciler", daemon=True)
    thread.start()
    return thread
