"""The Celery app and its configuration: broker (configured or embedded), queues, acks and prefetch.

Imports nothing of ``worker``: the task functions live in ``worker.jobs.tasks``, which the app
includes, so ``celery -A worker.jobs.celery_app worker`` and ``alignscope worker`` consume the same
tasks. Why the embedded broker is kombu's ``filesystem://`` transport: docs/decisions/0001-embedded-broker.md.
Queues, one per device class, are ``backend.queue``'s: ``gpu`` (``device: cuda``) and Celery's
default ``celery``. Workers run the ``threads`` pool (a task only watches a subprocess), concurrency
1, prefetch 1, ``acks_late``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from backend.queue import DEFAULT_QUEUE, GPU_QUEUE
from backend.settings import Settings, get_settings

QUEUES = (GPU_QUEUE, DEFAULT_QUEUE)
POLLING_INTERVAL_S = 0.1


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


app = Celery("alignscope", set_as_current=False, include=["worker.jobs.tasks"])
app.add_defaults(lambda: celery_config(get_settings()))
