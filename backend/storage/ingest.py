"""External runs: the rows of a trainer outside AlignScope (``import alignscope``), written through the
ingest API. Each function runs inside the caller's transaction and is idempotent:

- ``open_run`` creates the run as ``running`` at attempt 1 under the client's id (``source`` set), or
  finds it; a native run with that id is refused;
- ``store_batch`` inserts points, pair records and texts with the native writers (``ON CONFLICT DO
  NOTHING``: a retried batch adds nothing) and renews the heartbeat. A run the reconciler failed for
  a lost client (``runs.CLIENT_LOST``) is running again when its client is back, since the client is
  the only writer and it just proved it lives;
- ``finish_run`` sets the final status of a running run, or of one failed for a lost client (a spool
  synced later ends the run the way its trainer did). A run already finished otherwise is left as is.

External runs always write at attempt 1: there is no second attempt of a trainer AlignScope did not
start.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Connection

from backend.storage import runs
from backend.storage.metrics import insert_points
from backend.storage.pairs import insert_pair_records, insert_pair_texts
from backend.storage.tables import runs as runs_table
from contracts.ingest import IngestBatch, RunFinish, RunOpen

ATTEMPT = 1
NATIVE = "run {} was trained by AlignScope itself; the ingest API cannot write it"


class NotExternal(ValueError):
    """The id names a run of AlignScope's own engine, which the ingest API may not write."""


@dataclass(frozen=True, slots=True)
class Stored:
    """Rows newly stored by one batch."""

    points: int
    pairs: int
    texts: int


def open_run(conn: Connection, run_id: str, body: RunOpen) -> runs.RunRow:
    """The external run ``run_id``, created as running when it does not exist."""
    existing = runs.get_run(conn, run_id)
    if existing is not None:
        if existing.source is None:
            raise NotExternal(NATIVE.format(run_id))
        return existing
    now = time.time()
    conn.execute(
        runs_table.insert().values(
            id=run_id,
            name=body.name,
            status="running",
            config=json.dumps(body.config, default=str),
            attempt=ATTEMPT,
            stop_requested=False,
            progress=0.0,
            total_steps=body.total_steps,
            created_at=now,
            started_at=now,
            heartbeat_at=now,
            environment=json.dumps(body.environment, default=str),
            source=body.source,
        )
    )
    found = runs.get_run(conn, run_id)
    assert found is not None
    return found


def external_run(conn: Connection, run_id: str) -> runs.RunRow | None:
    """The run when it is external; None when it does not exist; NotExternal for a native run."""
    row = runs.get_run(conn, run_id)
    if row is not None and row.source is None:
        raise NotExternal(NATIVE.format(run_id))
    return row


def store_batch(conn: Connection, run_id: str, batch: IngestBatch) -> Stored:
    """Insert the batch's rows (fenced at attempt 1) and renew the heartbeat and progress."""
    _revive(conn, run_id)
    stored = Stored(
        insert_points(conn, run_id, ATTEMPT, batch.metric_points()),
        insert_pair_records(conn, run_id, ATTEMPT, batch.pair_records()),
        insert_pair_texts(conn, run_id, batch.pair_texts()),
    )
    runs.heartbeat(conn, run_id, ATTEMPT, batch.step, None, batch.progress, batch.message)
    return stored


def finish_run(conn: Connection, run_id: str, body: RunFinish) -> None:
    """running (or failed for a lost client) → ``body.status``."""
    row = runs_table.c
    finishable = and_(
        row.id == run_id,
        row.source.is_not(None),
        or_(row.status == "running", and_(row.status == "failed", row.error == runs.CLIENT_LOST)),
    )
    values: dict[str, object] = {"status": body.status, "error": body.error, "finished_at": time.time()}
    if body.status == "succeeded":
        values["progress"] = 1.0
    conn.execute(update(runs_table).where(finishable).values(**values))


def _revive(conn: Connection, run_id: str) -> None:
    row = runs_table.c
    lost = and_(row.id == run_id, row.status == "failed", row.error == runs.CLIENT_LOST)
    conn.execute(update(runs_table).where(lost).values(status="running", error=None, finished_at=None))
