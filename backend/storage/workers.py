"""Worker presence: what each worker process offers (host, queues, GPUs, CUDA, free memory), the run
it holds and when it was last seen. A worker upserts its own row every few seconds
(``worker.jobs.presence``); a row not seen for ``LIVE_S`` seconds, or marked ``stopped``, is not live.

``placement_problem`` is the submit-time question "can some live worker take this run?": a run
asking for ``device: cuda`` while live workers exist and none has CUDA is refused at once (it would
fail a few seconds later on whichever worker claims it); with no live worker at all the run waits,
and ``waiting_for`` says what for.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from backend.storage.tables import workers

REPORT_EVERY_S = 5.0
LIVE_S = 4 * REPORT_EVERY_S  # a worker silent for this long is gone (killed, host down)
FORGET_S = 7 * 24 * 3600.0  # rows of workers gone for a week are deleted at the next report


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One row of ``workers`` with its JSON columns decoded; ``live`` as of the read."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    gpus: int
    cuda: str | None
    devices: tuple[dict[str, Any], ...]
    free_memory_bytes: int | None
    run_id: str | None
    state: str
    started_at: float
    last_seen: float
    live: bool


def report(conn: Connection, values: dict[str, Any], now: float | None = None) -> None:
    """Upsert this worker's row (``values``: the table's columns but ``last_seen``, lists as lists,
    ``run_id`` for the ``training_run`` column)."""
    now = time.time() if now is None else now
    row = {
        **{key: value for key, value in values.items() if key != "run_id"},
        "training_run": values.get("run_id"),
        "queues": json.dumps(list(values["queues"])),
        "devices": json.dumps(list(values["devices"])),
        "last_seen": now,
    }
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(workers).values(**row)
    changed = {key: statement.excluded[key] for key in row if key != "id"}
    conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_=changed))
    conn.execute(delete(workers).where(workers.c.last_seen < now - FORGET_S))


def mark_stopped(conn: Connection, worker_id: str, now: float | None = None) -> None:
    """A worker shutting down cleanly: not live any more, its last row kept for the Workers page."""
    now = time.time() if now is None else now
    conn.execute(
        workers.update()
        .where(workers.c.id == worker_id)
        .values(state="stopped", training_run=None, last_seen=now)
    )


def list_workers(conn: Connection, now: float | None = None) -> list[WorkerRow]:
    """Every known worker, live ones first, then by host and id."""
    now = time.time() if now is None else now
    rows = [_row(row, now) for row in conn.execute(select(workers)).mappings()]
    return sorted(rows, key=lambda w: (not w.live, w.host, w.id))


def live_workers(conn: Connection, now: float | None = None) -> list[WorkerRow]:
    return [worker for worker in list_workers(conn, now) if worker.live]


def placement_problem(conn: Connection, device: str, now: float | None = None) -> str | None:
    """Why no live worker can take a run on ``device`` (the message names the fix), or None."""
    if device != "cuda":
        return None
    live = live_workers(conn, now)
    if not live or any(worker.cuda for worker in live):
        return None
    seen = ", ".join(sorted({worker.host for worker in live}))
    return (
        f"no live worker has CUDA (live, CPU only: {seen}); use device: auto, which trains on CUDA "
        "where a worker has it and on the CPU otherwise, or start a worker on a CUDA machine "
        "(alignscope worker --queue gpu --gpus 1)"
    )


def waiting_for(conn: Connection, device: str, now: float | None = None) -> str | None:
    """What a queued run waits for when no live worker can start it ("a worker with CUDA"), or None."""
    live = live_workers(conn, now)
    if device == "cuda" and not any(worker.cuda for worker in live):
        return "a worker with CUDA"
    if not live:
        return "a worker"
    return None


def _row(row: Any, now: float) -> WorkerRow:
    live = row["state"] != "stopped" and row["last_seen"] >= now - LIVE_S
    return WorkerRow(
        id=row["id"],
        host=row["host"],
        pid=row["pid"],
        queues=tuple(json.loads(row["queues"])),
        gpus=row["gpus"],
        cuda=row["cuda"],
        devices=tuple(json.loads(row["devices"])),
        free_memory_bytes=row["free_memory_bytes"],
        run_id=row["training_run"],
        state=row["state"],
        started_at=row["started_at"],
        last_seen=row["last_seen"],
        live=live,
    )
