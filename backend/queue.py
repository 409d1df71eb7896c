"""Waking a worker: the training task is sent to the broker by NAME, so the backend never imports the
worker (or torch). The run row is the truth; a message is only a wake-up, and a lost one is re-sent
by the reconciler.

Task: ``runs.train`` with args ``[run_id, attempt]``. Queue: ``gpu`` for ``device: cuda`` runs,
Celery's default ``celery`` otherwise (a plain ``celery worker`` consumes it).

Task: ``experiments.run`` with args ``[group]``: a worker runs the experiment group whose queued row
the API created (``backend.storage.experiment_groups``); queue ``gpu`` when the preset's runs ask for
``device: cuda``, else ``celery``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from contracts.config import RunConfig

TASK_NAME = "runs.train"
EXPERIMENT_TASK = "experiments.run"
DEFAULT_QUEUE = "celery"
GPU_QUEUE = "gpu"
_log = logging.getLogger(__name__)


def queue_for(config: RunConfig) -> str:
    """The broker queue a run goes to: one queue per device class."""
    return GPU_QUEUE if config.device == "cuda" else DEFAULT_QUEUE


def experiment_queue(gpu: bool) -> str:
    """The broker queue of an experiment group whose runs do (``gpu``) or do not ask for CUDA."""
    return GPU_QUEUE if gpu else DEFAULT_QUEUE


class Enqueuer(Protocol):
    """Sends the wake-up for run ``run_id`` at ``attempt``, or for experiment group ``group``; never
    raises for a broker outage."""

    def enqueue(self, run_id: str, attempt: int, config: RunConfig) -> None: ...

    def enqueue_experiment(self, group: str, queue: str) -> None: ...

    def describe(self) -> str: ...


@dataclass
class RecordingEnqueuer:
    """Sends nothing and remembers each (run_id, attempt, queue): for API tests, or when no broker is
    configured (runs then wait for a reconciler or a worker sweep)."""

    sent: list[tuple[str, int, str]] = field(default_factory=list)
    experiments: list[tuple[str, str]] = field(default_factory=list)  # (group, queue)

    def enqueue(self, run_id: str, attempt: int, config: RunConfig) -> None:
        self.sent.append((run_id, attempt, queue_for(config)))

    def enqueue_experiment(self, group: str, queue: str) -> None:
        self.experiments.append((group, queue))

    def describe(self) -> str:
        return "none"


class CeleryEnqueuer:
    """``celery.Celery(broker=url).send_task(TASK_NAME, args=[run_id, attempt], queue=…)``; the Celery
    app is built on first use (importing celery costs ~0.3 s)."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self._app: Any = None

    def enqueue(self, run_id: str, attempt: int, config: RunConfig) -> None:
        self._send(TASK_NAME, [run_id, attempt], queue_for(config))

    def enqueue_experiment(self, group: str, queue: str) -> None:
        self._send(EXPERIMENT_TASK, [group], queue)

    def _send(self, task: str, args: list[Any], queue: str) -> None:
        if self._app is None:
            import celery

            self._app = celery.Celery("alignscope-api", broker=self.broker_url)
        policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
        try:
            self._app.send_task(task, args=args, queue=queue, retry=True, retry_policy=policy)
        except Exception as exc:  # the row stays queued; a run's task is re-sent by the reconciler
            _log.warning("could not send %s %s: %s", task, args, exc)

    def describe(self) -> str:
        return redact(self.broker_url)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def default_enqueuer(broker_url: str | None) -> Enqueuer:
    """A CeleryEnqueuer for ``broker_url``; a RecordingEnqueuer when there is none (runs then stay
    queued until something else sends their task, e.g. the service's reconciler)."""
    if broker_url:
        return CeleryEnqueuer(broker_url)
    _log.warning("no broker configured (ALIGNSCOPE_BROKER_URL): new runs are not sent to a worker")
    return RecordingEnqueuer()
