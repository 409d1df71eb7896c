"""Sending (and re-sending) the tasks that wake a worker: ``backend.queue.Enqueuer`` over the Celery
app, used by the API, the reconciler and a supervisor that releases its run. A failed send is
logged, never raised: the row stays queued and the reconciler sends it again."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from backend.queue import EXPERIMENT_TASK, TASK_NAME, queue_for, redact
from contracts.config import RunConfig
from worker.jobs.celery_app import app

log = logging.getLogger(__name__)


class TaskEnqueuer:
    """``backend.queue.Enqueuer`` over the app (the embedded broker included)."""

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
