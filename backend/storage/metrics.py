"""Metric points: fenced idempotent batch inserts, downsampled series, the live-stream replay.

NaN values are stored as NULL and come back as NaN; ±inf are kept as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from backend.storage.bulk import allocate_seq, insert_rows, nan_to_null, null_to_nan
from backend.storage.fencing import check_attempt
from backend.storage.tables import metric_points
from contracts.events import MetricPoint

MIN_POINTS = 5  # first + last + one bucket of (min, max, NaN)
_COLUMNS = ("seq", "run_id", "key", "step", "value", "wall_time")


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """A metric point as stored, with its stream cursor ``seq``."""

    seq: int
    run_id: str
    key: str
    step: int
    value: float
    wall_time: float


def insert_points(conn: Connection, run_id: str, attempt: int, points: Sequence[MetricPoint]) -> int:
    """Insert ``points`` for ``run_id`` in one batch; a (key, step)
    already stored is skipped, so a retried batch adds nothing. Raises ``StaleAttempt`` (writing
    nothing) unless the run is at ``attempt``. Returns the number of rows inserted."""
    check_attempt(conn, run_id, attempt)
    if not points:
        return 0
    first = allocate_seq(conn, metric_points.name, len(points))
    rows = [
        (seq, run_id, p.key, p.step, nan_to_null(p.value), p.wall_time)
        for seq, p in enumerate(points, start=first)
    ]
    return insert_rows(conn, metric_points, _COLUMNS, rows)


def keys(conn: Connection, run_id: str) -> list[str]:
    """The metric keys a run has, sorted."""
    stmt = select(metric_points.c.key).where(metric_points.c.run_id == run_id).distinct()
    return sorted(conn.execute(stmt).scalars())


def series(
    conn: Connection,
    run_id: str,
    key: str,
    max_points: int = 1000,
    since_step: int | None = None,
    until_step: int | None = None,
) -> list[tuple[int, float]]:
    """(step, value) of one metric, ascending by step, with since_step < step ≤ until_step.

    Longer series are downsampled on the server: the step range is cut into equal buckets and each
    bucket keeps its minimum, its maximum and (when it has one) its first NaN, so spikes and
    divergences survive; the first and last points are always kept. Never more than ``max_points``
    (≥ MIN_POINTS) points.
    """
    if max_points < MIN_POINTS:
        raise ValueError(f"max_points must be at least {MIN_POINTS}")
    mp = metric_points.c
    where = [mp.run_id == run_id, mp.key == key]
    if since_step is not None:
        where.append(mp.step > since_step)
    if until_step is not None:
        where.append(mp.step <= until_step)
    count, first, last, numbers = conn.execute(
        select(func.count(), func.min(mp.step), func.max(mp.step), func.count(mp.value)).where(*where)
    ).one()
    if count <= max_points:
        stmt = select(mp.step, mp.value).where(*where).order_by(mp.step)
    else:
        per_bucket = 2 if numbers == count else 3
        stmt = _bucketed(where, first, last, (max_points - 2) // per_bucket)
    return [(step, null_to_nan(value)) for step, value in conn.execute(stmt)]


def _bucketed(where: list[ColumnElement[bool]], first: int, last: int, buckets: int) -> Select:
    """Rows that are a bucket's min, max or first NaN, or the first/last point of the range."""
    mp = metric_points.c
    bucket = ((mp.step - first) * buckets // (last - first + 1)).label("bucket")
    inner = select(mp.step, mp.value, bucket).where(*where).subquery()
    step, value, part = inner.c.step, inner.c.value, inner.c.bucket
    ranked = select(
        step,
        value,
        func.row_number().over(partition_by=part, order_by=(value.asc().nulls_last(), step)).label("lo"),
        func.row_number().over(partition_by=part, order_by=(value.desc().nulls_last(), step)).label("hi"),
        func.row_number().over(partition_by=(part, value.is_(None)), order_by=step).label("nth"),
    ).subquery()
    r = ranked.c
    keep = or_(r.lo == 1, r.hi == 1, and_(r.nth == 1, r.value.is_(None)), r.step.in_((first, last)))
    return select(r.step, r.value).where(keep).order_by(r.step)


def points_after(
    conn: Connection, run_id: str | None, after_seq: int, limit: int = 1000
) -> list[StoredPoint]:
    """Points with seq > after_seq (of one run, or of all runs when run_id is None), ascending by
    seq, at most ``limit``: the replay log of the live stream."""
    mp = metric_points.c
    stmt = select(metric_points).where(mp.seq > after_seq)
    if run_id is not None:
        # SQLite (no statistics) would walk the whole run in its (run_id, key, step) index and sort;
        # `run_id || ''` hides that index so it walks the seq primary key, where the tail is short.
        column = mp.run_id + "" if conn.dialect.name == "sqlite" else mp.run_id
        stmt = stmt.where(column == run_id)
    rows = conn.execute(stmt.order_by(mp.seq).limit(limit))
    return [
        StoredPoint(row.seq, row.run_id, row.key, row.step, null_to_nan(row.value), row.wall_time)
        for row in rows
    ]


def last_seq(conn: Connection) -> int:
    """The newest stored seq (0 when none). Read it before loading history, then stream from it."""
    return conn.execute(select(func.coalesce(func.max(metric_points.c.seq), 0))).scalar_one()
