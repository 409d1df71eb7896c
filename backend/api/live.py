"""The live stream (Server-Sent Events). The database is the replay log: every ``poll_s`` the stream
reads metric points with ``seq`` > its cursor (``metrics.points_after``), new pair-record steps and
changed run rows, and sends them as events:

- ``points`` (``id:`` = the last seq of the event): ``{"run_id", "points": [{"key","step","value"}]}``;
  a batch is cut into consecutive same-run pieces in seq order, so every id a client has seen means
  "all points up to here were delivered" and ``Last-Event-ID`` resumes with no gap and no duplicate;
- ``pairs``: ``{"run_id", "step"}`` once per step with new pair records;
- ``status``: a RunOut when status, step, message, attempt, error or the stop flag of a run changes
  (the run's stream sends it once at the start too);
- ``deleted``: ``{"run_id"}`` when a run disappears (the run's stream then ends).

A comment line is sent every ``heartbeat_s`` when nothing else was; the stream ends when the client
disconnects, or after ``until_idle_s`` seconds without events when that is given (tests).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import TypeVar

from fastapi import Request
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from backend.api import placement
from backend.api.deps import ApiContext
from backend.api.models import PointsEvent, RunOut
from backend.storage import metrics, runs
from backend.storage.tables import pair_records
from backend.storage.tables import runs as runs_table

BATCH = 1000
RETRY_MS = 2000
T = TypeVar("T")
_WATCHED = ("status", "step", "message", "attempt", "error", "stop_requested")


@dataclass
class Cursor:
    """Where a stream is: last metric seq sent, last pair-record seq seen, run signatures sent."""

    run_id: str | None
    seq: int
    pair_seq: int = 0
    seen: dict[str, tuple[object, ...]] = field(default_factory=dict)
    ended: bool = False
    checkpoints_dir: Path | None = None  # set: status events say whether Resume can work


def start(conn: Connection, run_id: str | None, after: int | None) -> Cursor:
    """A cursor at ``after`` (default: the newest point, i.e. live only). The run's stream will send
    the run's status first; the all-runs stream only sends later changes."""
    seq = metrics.last_seq(conn) if after is None else after
    cursor = Cursor(run_id, seq, _newest_pair_seq(conn))
    if run_id is None:
        cursor.seen = _signatures(conn)
    return cursor


def poll(conn: Connection, cursor: Cursor) -> tuple[list[str], bool]:
    """The SSE frames due since ``cursor`` (advanced in place) and whether more points are waiting."""
    points = metrics.points_after(conn, cursor.run_id, cursor.seq, limit=BATCH)
    frames = []
    for run_id, group in groupby(points, key=lambda p: p.run_id):
        piece = list(group)
        frames.append(_frame("points", PointsEvent.of(run_id, piece).model_dump_json(), piece[-1].seq))
    if points:
        cursor.seq = points[-1].seq
    frames.extend(_pair_frames(conn, cursor))
    frames.extend(_status_frames(conn, cursor))
    return frames, len(points) == BATCH


def _frame(event: str, data: str, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


def _newest_pair_seq(conn: Connection) -> int:
    return conn.execute(select(func.coalesce(func.max(pair_records.c.seq), 0))).scalar_one()


def _pair_frames(conn: Connection, cursor: Cursor) -> list[str]:
    pr = pair_records.c
    newest = func.max(pr.seq).label("newest")
    stmt = select(pr.run_id, pr.step, newest).where(pr.seq > cursor.pair_seq)
    if cursor.run_id is not None:  # `|| ''` stops SQLite from picking the run_id index: the seq key
        # walk from the cursor reads only the new rows, the run_id index every row of the run
        column = pr.run_id + "" if conn.dialect.name == "sqlite" else pr.run_id
        stmt = stmt.where(column == cursor.run_id)
    rows = conn.execute(stmt.group_by(pr.run_id, pr.step).order_by(newest)).all()
    if rows:
        cursor.pair_seq = max(cursor.pair_seq, rows[-1].newest)
    return [_frame("pairs", json.dumps({"run_id": row.run_id, "step": row.step})) for row in rows]


def _signatures(conn: Connection, run_id: str | None = None) -> dict[str, tuple[object, ...]]:
    r = runs_table.c
    stmt = select(r.id, *(r[name] for name in _WATCHED))
    if run_id is not None:
        stmt = stmt.where(r.id == run_id)
    return {row[0]: tuple(row[1:]) for row in conn.execute(stmt)}


def _status_frames(conn: Connection, cursor: Cursor) -> list[str]:
    now = _signatures(conn, cursor.run_id)
    frames = []
    for run_id in cursor.seen.keys() - now.keys():
        frames.append(_frame("deleted", json.dumps({"run_id": run_id})))
        cursor.ended = cursor.run_id is not None
    if cursor.run_id is not None and not now and not cursor.seen:
        cursor.ended = True  # the run never existed (or was deleted before the first poll)
    for run_id, signature in now.items():
        if cursor.seen.get(run_id) != signature:
            row = runs.get_run(conn, run_id)
            if row is not None:
                out = (
                    placement.annotated(conn, cursor.checkpoints_dir, [row])[0]
                    if cursor.checkpoints_dir
                    else RunOut.of(row)
                )
                frames.append(_frame("status", out.model_dump_json()))
    cursor.seen = now
    return frames


async def events(
    ctx: ApiContext, request: Request, run_id: str | None, after: int | None, until_idle_s: float | None
) -> AsyncIterator[str]:
    """The SSE body: database reads run in worker threads, waits on the event loop."""
    cursor = await asyncio.to_thread(_read, ctx, start, run_id, after)
    cursor.checkpoints_dir = ctx.checkpoints_dir
    yield f"retry: {RETRY_MS}\n\n"
    last_event = last_write = time.monotonic()
    while not cursor.ended and not await request.is_disconnected():
        frames, more = await asyncio.to_thread(_read, ctx, poll, cursor)
        now = time.monotonic()
        if frames:
            yield "".join(frames)
            last_event = last_write = now
        elif now - last_write >= ctx.options.heartbeat_s:
            yield ": keep-alive\n\n"
            last_write = now
        if until_idle_s is not None and now - last_event >= until_idle_s:
            break
        if not more:
            await asyncio.sleep(ctx.options.poll_s)


def _read(ctx: ApiContext, function: Callable[..., T], *args: object) -> T:
    with ctx.reads.begin() as conn:
        return function(conn, *args)
