"""The Celery tasks, a few lines each, and the worker's start and shutdown hooks.

``runs.train(run_id, attempt)`` → ``run_supervisor.supervise``; ``experiments.run(group)`` →
``group_supervisor.supervise_group``. The run (or group) row is the truth; a broker message only
wakes a worker, and a claim by conditional UPDATE makes a duplicate delivery do nothing.

Shutdown (``worker_shutting_down``, sent by Celery for each SIGTERM, SIGINT or SIGQUIT, so the same
in ``alignscope worker`` and a plain ``celery -A worker.jobs.celery_app worker``): the first request
sets ``SHUTDOWN`` (trainers checkpoint and release their runs, experiment commands get SIGINT);
every later one sets ``ABORT`` and kills every supervised child at once
(docs/decisions/0002-trainer-signals.md).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from functools import cache

from celery import signals
from sqlalchemy import Engine

from backend.queue import EXPERIMENT_TASK, TASK_NAME
from backend.settings import get_settings
from backend.storage.db import make_engine
from worker.jobs import children, presence, warm_trainer
from worker.jobs.celery_app import app
from worker.jobs.group_supervisor import supervise_group
from worker.jobs.reconciler import ReconcilePolicy, start_reconciler
from worker.jobs.run_supervisor import SupervisorOptions, supervise

SHUTDOWN = threading.Event()  # set at this worker's first shutdown request
ABORT = threading.Event()  # set at a later one: every supervised child is killed at once


@cache
def database() -> Engine:
    """This process's engine for the configured database."""
    return make_engine(get_settings().database_url)


def supervisor_options(environ: Mapping[str, str] = os.environ) -> SupervisorOptions:
    """Options from the settings; ALIGNSCOPE_WORKER_GPUS (set by ``alignscope worker --gpus``) and
    ALIGNSCOPE_MAX_ATTEMPTS (as the reconciler's)."""
    gpus = int(environ.get("ALIGNSCOPE_WORKER_GPUS") or 0)
    attempts = ReconcilePolicy.from_env(environ).max_attempts
    return SupervisorOptions(get_settings().data_dir, gpus=gpus, max_attempts=attempts)


@app.task(name=TASK_NAME, acks_late=True, ignore_result=True)
def train_run(run_id: str, attempt: int) -> str:
    """Supervise attempt ``attempt`` of run ``run_id``; returns what happened (see ``supervise``)."""
    return supervise(database(), run_id, attempt, supervisor_options(), SHUTDOWN)


@app.task(name=EXPERIMENT_TASK, acks_late=True, ignore_result=True)
def run_experiment(group: str) -> str:
    """Run experiment group ``group``; returns what happened (see ``supervise_group``)."""
    return supervise_group(database(), group, get_settings().data_dir, SHUTDOWN, abort=ABORT)


@signals.worker_ready.connect
def _reconcile_in_worker(**_: object) -> None:
    start_reconciler(database(), SHUTDOWN)


@signals.worker_ready.connect
def _start_spare_trainer(**_: object) -> None:
    """A warm spare trainer waits for this worker's next run (``warm_trainer``)."""
    warm_trainer.install(get_settings().data_dir)


@signals.worker_ready.connect
def _report_presence(sender: object = None, **_: object) -> None:
    """Report what this worker offers to the store until it shuts down (``presence``)."""
    presence.start(database(), SHUTDOWN, consumed_queues(sender), supervisor_options().gpus)


def consumed_queues(consumer: object) -> list[str]:
    """Names of the queues this worker consumes (its consumer's, else the app's configuration)."""
    task_consumer = getattr(consumer, "task_consumer", None)
    queues = getattr(task_consumer, "queues", None) or list(app.amqp.queues.consume_from.values())
    return sorted({queue.name for queue in queues})


@signals.worker_shutting_down.connect
def _end_children(**_: object) -> None:
    """First shutdown request: end the running work cleanly; any later one: kill it at once."""
    if SHUTDOWN.is_set():
        ABORT.set()
        if killed := children.kill_all():  # in a signal handler: no print, no logging
            said = ", ".join(f"{n} {role}(s) killed" for role, n in sorted(killed.items(), reverse=True))
            os.write(2, f"worker: shutdown requested again; {said}\n".encode())
    SHUTDOWN.set()
    warm_trainer.close()
