"""Response models of worker presence (``GET /api/workers``) and of a run's placement: whether a
worker can take it now and whether Resume can work (docs/decisions/0082-workers-and-placement.md)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from backend.api.models import Out
from backend.storage.workers import LIVE_S, WorkerRow


class WorkerOut(Out):
    """A worker process as it last reported itself; ``live`` false once stopped or silent for
    ``live_after_s`` seconds."""

    id: str
    host: str
    pid: int
    queues: list[str]
    gpus: int
    cuda: str | None
    devices: list[dict[str, Any]]
    free_memory_bytes: int | None
    run_id: str | None
    state: str
    started_at: float
    last_seen: float
    live: bool
    live_after_s: float = LIVE_S

    @classmethod
    def of(cls, row: WorkerRow) -> WorkerOut:
        values = asdict(row)
        return cls(**{**values, "queues": list(row.queues), "devices": list(row.devices)})
