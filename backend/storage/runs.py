"""The run row and its state machine: queued → running → succeeded | failed | stopped.

A running attempt goes back to queued in two ways: ``release_run`` (a worker shutting down cleanly:
same attempt, resumed from the checkpoint it just wrote) and ``requeue_stale`` (the reconciler, after a
crash: attempt + 1, up to a cap).

Every transition is a conditional UPDATE (``… WHERE status = … AND attempt = …``) whose row count
says whether it happened, so a duplicate broker delivery, a stale worker or a racing reconciler does
nothing. Functions take a Connection inside the caller's transaction (``with engine.begin() as conn``;
a Session's ``session.connection()`` works too) and never commit. Times are UTC unix seconds.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, delete, false, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from backend.storage.tables import FINAL_STATUSES, metadata, metric_points, metric_series, runs

HEARTBEAT_LOST = "heartbeat lost (worker died?)"
CLIENT_LOST = (
    "the external trainer stopped sending (killed, or cut off from the server for longer than "
    "ALIGNSCOPE_STALE_AFTER_S); rows it delivers later are still stored"
)
RELEASED = "handed back by a worker shutting down; resumes from its last checkpoint"


@dataclass(frozen=True, slots=True)
class RunRow:
    """One row of ``runs``; ``config`` and ``environment`` are JSON text."""

    id: str
    name: str
    status: str
    config: str
    preset: str | None
    group_name: str | None
    attempt: int
    error: str | None
    stop_requested: bool
    progress: float
    message: str | None
    step: int | None
    total_steps: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None
    parent_id: str | None
    checkpoint_path: str | None
    environment: str | None
    source: str | None = None
    resume_step: int | None = None


def create_run(
    conn: Connection,
    config_json: str,
    name: str,
    preset: str | None,
    group: str | None,
    parent_id: str | None = None,
    resume_step: int | None = None,
) -> str:
    """Insert a queued run at attempt 1; returns its id (32 hex digits). ``resume_step``: the run
    resumes ``parent_id`` after that step (its history continues the parent's)."""
    run_id = uuid.uuid4().hex
    resume = {} if resume_step is None else {"resume_step": resume_step}  # (older schemas in tests)
    conn.execute(
        runs.insert().values(
            id=run_id,
            name=name,
            status="queued",
            config=config_json,
            preset=preset,
            group_name=group,
            attempt=1,
            stop_requested=False,
            progress=0.0,
            created_at=time.time(),
            parent_id=parent_id,
            **resume,
        )
    )
    return run_id


def get_run(conn: Connection, run_id: str) -> RunRow | None:
    """The run, or None."""
    row = conn.execute(select(runs).where(runs.c.id == run_id)).one_or_none()
    return None if row is None else RunRow(**row._mapping)


def list_runs(
    conn: Connection,
    status: str | None = None,
    name: str | None = None,
    preset: str | None = None,
    group: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[RunRow]:
    """Runs, newest first. name matches a case-insensitive substring; the others match exactly."""
    stmt = select(runs)
    if status is not None:
        stmt = stmt.where(runs.c.status == status)
    if name:
        stmt = stmt.where(runs.c.name.icontains(name, autoescape=True))
    if preset is not None:
        stmt = stmt.where(runs.c.preset == preset)
    if group is not None:
        stmt = stmt.where(runs.c.group_name == group)
    stmt = stmt.order_by(runs.c.created_at.desc(), runs.c.id).limit(limit).offset(offset)
    return [RunRow(**row._mapping) for row in conn.execute(stmt)]


def _transition(conn: Connection, where: ColumnElement[bool], **values: object) -> bool:
    return conn.execute(update(runs).where(where).values(**values)).rowcount == 1


def _owned(run_id: str, attempt: int, status: str = "running") -> ColumnElement[bool]:
    return and_(runs.c.id == run_id, runs.c.status == status, runs.c.attempt == attempt)


def claim_run(conn: Connection, run_id: str, attempt: int) -> bool:
    """queued → running for ``attempt``; False when someone else already claimed it (or it changed)."""
    now = time.time()
    return _transition(
        conn,
        _owned(run_id, attempt, "queued"),
        status="running",
        started_at=now,
        heartbeat_at=now,
        error=None,
    )


def heartbeat(
    conn: Connection,
    run_id: str,
    attempt: int,
    step: int | None = None,
    total_steps: int | None = None,
    progress: float | None = None,
    message: str | None = None,
) -> bool:
    """Renew the heartbeat of a running attempt and update the given progress fields (None leaves a
    field as it is). False when the run is not running at ``attempt``."""
    fields = {"step": step, "total_steps": total_steps, "progress": progress, "message": message}
    changes = {name: value for name, value in fields.items() if value is not None}
    return _transition(conn, _owned(run_id, attempt), heartbeat_at=time.time(), **changes)


def finish_run(conn: Connection, run_id: str, attempt: int, status: str, error: str | None = None) -> bool:
    """running → ``status`` (succeeded | failed | stopped) for ``attempt``; False if not ours."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"finish status must be one of {FINAL_STATUSES}, got {status!r}")
    extra = {"progress": 1.0} if status == "succeeded" else {}
    return _transition(
        conn, _owned(run_id, attempt), status=status, error=error, finished_at=time.time(), **extra
    )


def release_run(conn: Connection, run_id: str, attempt: int) -> bool:
    """running → queued at the SAME attempt: a run whose trainer stopped for a worker shutdown (after
    flushing its rows and recording its checkpoint, or dead) goes back to the queue.

    The attempt number is kept (a clean shutdown costs no attempt): the fencing a new number gives
    against a still-living writer is not needed, as the trainer writes nothing after this. Only while
    ``attempt`` owns the run and no stop was requested (a user's stop wins: the caller then finishes
    it as stopped). The next claim sets a new ``started_at``. False when nothing changed.
    """
    ours = and_(_owned(run_id, attempt), runs.c.stop_requested == false())
    return _transition(conn, ours, status="queued", heartbeat_at=None, error=None, message=RELEASED)


def request_stop(conn: Connection, run_id: str) -> str | None:
    """Cooperative cancellation: a queued run becomes stopped at once; a running one gets its
    stop_requested flag. Returns the run's status afterwards, or None when it does not exist."""
    queued = and_(runs.c.id == run_id, runs.c.status == "queued")
    if _transition(conn, queued, status="stopped", finished_at=time.time()):
        return "stopped"
    running = and_(runs.c.id == run_id, runs.c.status == "running")
    if _transition(conn, running, stop_requested=True):
        return "running"
    return conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar_one_or_none()


def stop_requested(conn: Connection, run_id: str, attempt: int | None = None) -> bool:
    """True when the trainer should stop: the flag is set or the run is gone; with ``attempt``, also
    when the run is no longer running at that attempt (re-queued or marked failed meanwhile)."""
    stmt = select(runs.c.stop_requested, runs.c.status, runs.c.attempt).where(runs.c.id == run_id)
    row = conn.execute(stmt).one_or_none()
    if row is None or row.stop_requested:
        return True
    return attempt is not None and (row.status != "running" or row.attempt != attempt)


def requeue_stale(
    conn: Connection, stale_after_s: float, max_attempts: int, now: float | None = None
) -> list[tuple[str, int]]:
    """Reconcile running runs whose heartbeat is older than ``stale_after_s``.

    A run with a checkpoint and attempt < max_attempts (attempts count from 1) goes back to queued
    with attempt + 1; one whose stop was requested becomes stopped; any other becomes failed with
    error ``HEARTBEAT_LOST``, an external run (``source`` set: no checkpoint here) with ``CLIENT_LOST``.
    Returns the (run_id, new_attempt) pairs re-queued, to be re-sent.
    """
    now = time.time() if now is None else now
    cutoff = now - stale_after_s
    stale = and_(runs.c.status == "running", runs.c.heartbeat_at < cutoff)
    columns = (runs.c.id, runs.c.attempt, runs.c.checkpoint_path, runs.c.stop_requested, runs.c.source)
    found = conn.execute(select(*columns).where(stale)).all()
    requeued: list[tuple[str, int]] = []
    for row in found:
        still_stale = and_(stale, runs.c.id == row.id, runs.c.attempt == row.attempt)
        if row.stop_requested:
            _transition(conn, still_stale, status="stopped", error=HEARTBEAT_LOST, finished_at=now)
        elif row.checkpoint_path and row.attempt < max_attempts:
            if _transition(
                conn,
                still_stale,
                status="queued",
                attempt=row.attempt + 1,
                heartbeat_at=None,
                message=f"re-queued after heartbeat loss (attempt {row.attempt + 1})",
            ):
                requeued.append((row.id, row.attempt + 1))
        else:
            error = HEARTBEAT_LOST if row.source is None else CLIENT_LOST
            _transition(conn, still_stale, status="failed", error=error, finished_at=now)
    return requeued


def requeue_attempt(conn: Connection, run_id: str, attempt: int, cause: str, max_attempts: int) -> bool:
    """A running attempt whose trainer died without recording an outcome, with a checkpoint recorded:
    back to queued at attempt + 1 (it resumes from the checkpoint) while attempt < ``max_attempts``,
    the cause kept in the run's message. False when it is not this attempt's, has no checkpoint, a
    stop was requested, or the attempts are spent (the caller then fails it)."""
    where = and_(
        _owned(run_id, attempt),
        runs.c.checkpoint_path.is_not(None),
        runs.c.stop_requested.is_(False),
        runs.c.attempt < max_attempts,
    )
    message = f"attempt {attempt} ended ({cause}); re-queued from its checkpoint as attempt {attempt + 1}"
    return _transition(conn, where, status="queued", attempt=attempt + 1, heartbeat_at=None, message=message)


def set_checkpoint(conn: Connection, run_id: str, attempt: int, path: str, status: str = "running") -> bool:
    """Record the latest checkpoint of a running attempt (where a re-queued attempt resumes), or with
    ``status="queued"`` the checkpoint a new run starts from (a resume)."""
    return _transition(conn, _owned(run_id, attempt, status), checkpoint_path=path)


def set_environment(conn: Connection, run_id: str, attempt: int, environment_json: str) -> bool:
    """Record the trainer's environment (JSON text: versions, devices) for a running attempt."""
    return _transition(conn, _owned(run_id, attempt), environment=environment_json)


def delete_run(conn: Connection, run_id: str) -> bool:
    """Delete a run and all its rows (children cloned from it keep living, parent_id → NULL).

    Its metric points go first, found by their series ids (a point names its run only through its
    series), then its series and its rows in every other table."""
    series = select(metric_series.c.id).where(metric_series.c.run_id == run_id)
    conn.execute(delete(metric_points).where(metric_points.c.series_id.in_(series)))
    for table in metadata.sorted_tables:
        if "run_id" in table.c:
            conn.execute(delete(table).where(table.c.run_id == run_id))
    conn.execute(update(runs).where(runs.c.parent_id == run_id).values(parent_id=None))
    return conn.execute(delete(runs).where(runs.c.id == run_id)).rowcount == 1
