"""The Celery side of the service: the app, the supervisor task ``runs.train`` and the reconciler.
The app also includes ``worker.experiment_tasks`` (the task ``experiments.run``), imported when a
worker starts.

The run row is the truth; a broker message only wakes a worker. ``runs.train(run_id, attempt)``
hands the attempt to ``worker.supervisor.supervise`` (claim by conditional UPDATE, trainer in its own
process, watched to the end), so a duplicate delivery does nothing. Workers run the ``threads`` pool
(the task only watches a subprocess, and the main process keeps the broker connection and receives
the shutdown signal that ends a trainer), concurrency 1, prefetch 1, ``acks_late``. Queues, one per
device class, are ``backend.queue``'s: ``gpu`` (``device: cuda``) and Celery's default ``celery``.

Broker: ALIGNSCOPE_BROKER_URL (``redis://…``, ``amqp://…``) or, unset, the embedded broker: kombu's
``filesystem://`` transport, its folders under ``<data_dir>/broker/`` (``queue/`` is both
data_folder_in and data_folder_out, ``processed/`` keeps delivered files on the same file system so
the move that claims a message is one atomic rename; the reconciler prunes it).
Chosen by measurement (2 shared cores, a threads-pool worker with concurrency 1 and acks_late, a
task appending its start time to a file, 10 tasks sent 0.37 s apart):

    transport                     pickup p50 / max      drained     idle worker CPU
    sqla+sqlite                   2593 ms / 4484 ms     7/10 in 3 s  0.5 %
    filesystem://, poll 0.1 s       64 ms /   99 ms    10/10         0.3 %

``sqla+sqlite`` polls once a second and delivers one message per poll (its polling interval cannot be
set: every transport option goes to ``create_engine``), keeps delivered rows forever, strands the
message of a SIGKILLed worker and ignores remote control. ``filesystem://`` deletes (moves) a message
before the task runs, so a worker killed in between loses it. Both losses are repaired the same way:
the reconciler re-sends a queued run or experiment group whose message is no longer in the broker.

Reconciler (``worker.reconciler``, whose ``Reconciler`` and ``ReconcilePolicy`` are importable from
here too): a daemon thread in every worker and in ``alignscope serve``, started by
``start_reconciler``. It re-queues or fails runs with a stale heartbeat, fails experiment groups with
a stale heartbeat, and re-sends the task of a run or group queued longer than
ALIGNSCOPE_RESEND_AFTER_S whose message the broker cannot be holding.

Shutdown (``worker_shutting_down``, sent by Celery for each SIGTERM, SIGINT or SIGQUIT, so the same in
``alignscope worker`` and a plain ``celery -A worker.tasks worker``): the first request sets
``SHUTDOWN`` (trainers checkpoint and release their runs, experiment commands get SIGINT); every later
one sets ``ABORT`` and kills the running trainers and experiment commands at once (their runs are
released from the last recorded checkpoint, or left to the reconciler). Celery alone only repeats its
warm shutdown, which waits for the running tasks, so without this hook a second SIGTERM changed nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from celery import Celery, signals
from kombu import Exchange, Queue
from sqlalchemy import Engine

from backend.queue import DEFAULT_QUEUE, EXPERIMENT_TASK, GPU_QUEUE, TASK_NAME, queue_for, redact
from backend.settings import Settings, get_settings
from backend.storage.db import make_engine
from contracts.config import RunConfig
from worker.reconciler import ReconcilePolicy, Reconciler
from worker.supervisor import SupervisorOptions, abort_trainers, supervise

log = logging.getLogger(__name__)
QUEUES = (GPU_QUEUE, DEFAULT_QUEUE)
POLLING_INTERVAL_S = 0.1
SHUTDOWN = threading.Event()  # set at this worker's first shutdown request
ABORT = threading.Event()  # set at a later one: trainers and experiment commands are killed at once


def broker_config(settings: Settings) -> dict[str, Any]:
    """Celery settings naming the broker: the configured URL, or the embedded filesystem broker."""
    if settings.broker_url:
        return {"broker_url": settings.broker_url}
    queue, processed = embedded_broker_folders(settings.data_dir)
    for folder in (queue, processed):
        folder.mkdir(parents=True, exist_ok=True)
    options = {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "processed_folder": str(processed),
        "store_processed": True,
        "polling_interval": POLLING_INTERVAL_S,
    }
    return {
        "broker_url": "filesystem://",
        "broker_transport_options": options,
        "worker_enable_remote_control": False,
    }


def embedded_broker_folders(data_dir: Path) -> tuple[Path, Path]:
    """(queue folder, processed folder) of the embedded broker."""
    return data_dir / "broker" / "queue", data_dir / "broker" / "processed"


def celery_config(settings: Settings) -> dict[str, Any]:
    """The whole Celery configuration for ``settings``."""
    return {
        **broker_config(settings),
        "task_queues": [Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
        "task_default_queue": DEFAULT_QUEUE,
        "task_acks_late": True,
        "task_ignore_result": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
    }


app = Celery("alignscope", set_as_current=False, include=["worker.experiment_tasks"])
app.add_defaults(lambda: celery_config(get_settings()))


@cache
def database() -> Engine:
    """This process's engine for the configured database."""
    return make_engine(get_settings().database_url)


def supervisor_options(environ: Mapping[str, str] = os.environ) -> SupervisorOptions:
    """Options from the settings; ALIGNSCOPE_WORKER_GPUS (set by ``alignscope worker --gpus``)."""
    return SupervisorOptions(get_settings().data_dir, gpus=int(environ.get("ALIGNSCOPE_WORKER_GPUS") or 0))


@app.task(name=TASK_NAME, acks_late=True, ignore_result=True)
def train_run(run_id: str, attempt: int) -> str:
    """Supervise attempt ``attempt`` of run ``run_id``; returns what happened (see ``supervise``)."""
    return supervise(database(), run_id, attempt, supervisor_options(), SHUTDOWN)


class TaskEnqueuer:
    """``backend.queue.Enqueuer`` over this module's app (the embedded broker included); a failed
    send is logged, never raised: the row stays queued and the reconciler re-sends it."""

    def __init__(self, celery: Celery = app) -> None:
        self.celery = celery

    def enqueue(self, run_id: str, attempt: int, config: RunConfig) -> None:
        self._send(TASK_NAME, [run_id, attempt], queue_for(config))

    def enqueue_experiment(self, group: str, queue: str) -> None:
        self._send(EXPERIMENT_TASK, [group], queue)

    def _send(self, task: str, args: list[Any], queue: str) -> None:
        policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
        try:
            self.celery.send_task(task, args=args, queue=queue, retry=True, retry_policy=policy)
        except Exception as exc:
            log.warning("could not send %s %s: %s", task, args, exc)

    def describe(self) -> str:
        return redact(str(self.celery.conf.broker_url))

    def waiting(self) -> int | None:
        """Messages waiting in the broker over all queues, or None when the broker cannot say."""
        try:
            with self.celery.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1)
                channel = conn.default_channel
                return sum(q.bind(channel).queue_declare()[1] for q in self.celery.amqp.queues.values())
        except Exception as exc:
            log.warning("broker queue sizes unavailable: %s", exc)
            return None


def start_reconciler(stop: threading.Event, settings: Settings | None = None) -> threading.Thread:
    """Start the reconciler as a daemon thread of this process (stopped by ``stop``)."""
    settings = settings or get_settings()
    processed = None if settings.broker_url else embedded_broker_folders(settings.data_dir)[1]
    reconciler = Reconciler(database(), TaskEnqueuer(), ReconcilePolicy.from_env(), processed)
    thread = threading.Thread(target=reconciler.run, args=(stop,), name="alignscope-reconciler", daemon=True)
    thread.start()
    return thread


@signals.worker_ready.connect
def _reconcile_in_worker(**_: object) -> None:
    start_reconciler(SHUTDOWN)


@signals.worker_shutting_down.connect
def _end_trainers(**_: object) -> None:
    """First shutdown request: end the running work cleanly; any later one: kill it at once."""
    if SHUTDOWN.is_set():
        ABORT.set()
        if killed := abort_trainers():  # in a signal handler: no print, no logging
            os.write(2, f"worker: shutdown requested again; {killed} trainer(s) killed\n".encode())
    SHUTDOWN.set()
