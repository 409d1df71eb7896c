"""Fencing: a writer proves it still owns a run by its attempt number.

A run re-queued by the reconciler gets ``attempt + 1``; the old trainer (perhaps only slow, not dead)
keeps its old number, and its writes are refused with ``StaleAttempt`` instead of mixing two
attempts' rows.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from backend.storage.tables import runs


class StaleAttempt(RuntimeError):
    """The run was deleted or re-queued: this attempt may no longer write to it."""


def check_attempt(conn: Connection, run_id: str, attempt: int) -> None:
    """Raise ``StaleAttempt`` unless run ``run_id`` exists with ``attempt``.

    On PostgreSQL the run row is share-locked until the caller's transaction ends, so a concurrent
    re-queue waits for the write to commit; SQLite's BEGIN IMMEDIATE already serializes writers.
    """
    stmt = select(runs.c.attempt).where(runs.c.id == run_id).with_for_update(read=True)
    current = conn.execute(stmt).scalar_one_or_none()
    if current is None:
        raise StaleAttempt(f"run {run_id} does not exist")
    if current != attempt:
        raise StaleAttempt(f"run {run_id} is at attempt {current}, not {attempt}")
