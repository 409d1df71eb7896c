"""Metric points: fenced idempotent batch inserts, downsampled series, the live-stream replay.

NaN values are stored as NULL and come back as NaN; ±inf are kept as they are. Each insert also
folds its new points into ``metric_rollups`` (see ``rollups``), from which long series are
downsampled without reading their points.

Every series (run_id, key) has an integer id in ``metric_series`` and its points are unique on
(series_id, step) (migration 0005). An insert looks up the ids of its batch's few distinct keys
(one indexed query; the missing ones are inserted first) in its own transaction rather than in a
process-wide cache: an id cached from a transaction that then rolled back would name a series row
that does not exist. Reads of a series find its id the same way and then read by (series_id, step).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ColumnElement

from backend.storage import rollups
from backend.storage.bulk import allocate_seq, insert_rows_while, null_to_nan
from backend.storage.fencing import check_attempt
from backend.storage.tables import metric_points, metric_points_seq_brin, metric_series, stream_counters
from contracts.events import MetricPoint

MIN_POINTS = 5  # first + last + one bucket of (min, max, NaN)
RAW_STEPS = 16_384  # the longest window read point by point when rollups would be too coarse
_COLUMNS = ("seq", "series_id", "step", "value", "wall_time")
_NEW_SERIES = text(
    f"INSERT INTO {metric_series.name} (run_id, key) VALUES (:run_id, :key) ON CONFLICT DO NOTHING"
)
Raw = tuple[int, float | None]  # (step, value) as stored: NULL for NaN
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE
_SUMMARIZE = text(
    "SELECT set_config('lock_timeout', '50ms', true), brin_summarize_new_values(CAST(:index AS regclass))"
)


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
    nothing) unless the run is at ``attempt``. Returns the number of rows inserted.

    The series of new keys are created and the rollups updated in the same transaction, the latter
    from the points actually inserted (see ``rollups.fold_in``)."""
    check_attempt(conn, run_id, attempt)
    if not points:
        return 0
    ids = _ensure_series(conn, run_id, {p.key for p in points})
    first = allocate_seq(conn, metric_points.name, len(points))
    rows = _PointRows(points, first, ids)
    work = partial(rollups.summarize, points)  # all new, usually: summarized while they are inserted
    inserted, level0 = insert_rows_while(conn, metric_points, _COLUMNS, rows, work)
    rollups.fold_in(conn, run_id, first, points, inserted, level0)
    return inserted


@dataclass(frozen=True, slots=True)
class _PointRows:
    """The metric_points rows (``_COLUMNS``) of ``points`` with seq first, first + 1, …, built as
    they are iterated: on PostgreSQL while COPY streams the earlier ones to the server."""

    points: Sequence[MetricPoint]
    first: int
    ids: dict[str, int]

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[tuple[object, ...]]:
        ids = self.ids
        for seq, p in enumerate(self.points, start=self.first):
            yield seq, ids[p.key], p.step, None if p.value != p.value else p.value, p.wall_time


def series_ids(conn: Connection, run_id: str, keys: Iterable[str] | None = None) -> dict[str, int]:
    """key → series id of ``run_id``'s series (only of ``keys`` when given; a key the run has no
    point of is absent)."""
    ms = metric_series.c
    stmt = select(ms.key, ms.id).where(ms.run_id == run_id)
    if keys is not None:
        stmt = stmt.where(ms.key.in_(list(keys)))
    return dict(conn.execute(stmt).tuples().all())


def _ensure_series(conn: Connection, run_id: str, keys: set[str]) -> dict[str, int]:
    """``series_ids`` of ``keys``, creating the missing series first (in sorted order, so that two
    writers lock them in one order; one created meanwhile by another writer is taken as it is)."""
    ids = series_ids(conn, run_id, keys)
    missing = sorted(keys.difference(ids))
    if missing:
        conn.execute(_NEW_SERIES, [{"run_id": run_id, "key": key} for key in missing])
        ids.update(series_ids(conn, run_id, missing))
    return ids


def keys(conn: Connection, run_id: str) -> list[str]:
    """The metric keys a run has, sorted."""
    return sorted(series_ids(conn, run_id))


def series(
    conn: Connection,
    run_id: str,
    key: str,
    max_points: int = 1000,
    since_step: int | None = None,
    until_step: int | None = None,
) -> list[tuple[int, float]]:
    """(step, value) of one metric, ascending by step, with since_step < step ≤ until_step.

    Longer series are downsampled on the server into buckets that each keep their minimum, their
    maximum and (when it has one) their first NaN, so spikes and divergences survive; the first and
    last points of the window are always kept. Never more than ``max_points`` (≥ MIN_POINTS) points.

    - A window of at most ``max_points`` steps, or one so short (≤ RAW_STEPS steps) that level-0
      rollups would cut it into at most half of (max_points − 2) // 2 buckets, is read point by
      point and cut into (max_points − 2) // (2, or 3 with a NaN) equal step ranges.
    - A longer one reads the finest rollup level with at most (max_points − 2) // 2 buckets in the
      window (between half that and that many, unless it is level 0 or the top); a bucket only
      partly inside the window is summarized from its raw points in the window instead. When the
      buckets' NaNs would make too many points, neighbouring buckets merge (a coarser level).
      When the window holds at most ``max_points`` points, they are all returned.
    """
    if max_points < MIN_POINTS:
        raise ValueError(f"max_points must be at least {MIN_POINTS}")
    series_id = series_ids(conn, run_id, [key]).get(key)
    if series_id is None:
        return []
    window = _Window(run_id, key, series_id, since_step, until_step)
    ends = window.ends(conn)
    if ends is None:
        return []
    first, last = ends
    span = last[0] - first[0] + 1
    buckets = (max_points - 2) // 2
    if span <= max_points or span <= min(buckets << (rollups.BASE_SHIFT - 1), RAW_STEPS):
        return _downsampled(window.points(conn), max_points)
    level = rollups.level_for(first[0], last[0], buckets)
    summaries = window.summaries(conn, level, first[0], last[0])
    if sum(s.count for s in summaries.values()) <= max_points:
        return [(step, null_to_nan(value)) for step, value in window.points(conn)]
    while True:
        kept = _kept(summaries.values(), (first, last))
        if len(kept) <= max_points:
            return kept
        summaries = rollups.coarser(summaries)


@dataclass(frozen=True, slots=True)
class _Window:
    """The points of one series (``series_id`` is that of (run_id, key)) with since_step < step ≤
    until_step (None: unbounded)."""

    run_id: str
    key: str
    series_id: int
    since_step: int | None
    until_step: int | None

    def where(self, low: int | None = None, high: int | None = None) -> list[ColumnElement[bool]]:
        """Conditions selecting the window, narrowed to low ≤ step ≤ high when given. One lower
        and one upper bound at most: SQLite would range-scan its index by one bound and filter
        the rest."""
        if self.since_step is not None:
            low = self.since_step + 1 if low is None else max(low, self.since_step + 1)
        if self.until_step is not None:
            high = self.until_step if high is None else min(high, self.until_step)
        mp = metric_points.c
        where = [mp.series_id == self.series_id]
        if low is not None:
            where.append(mp.step >= low)
        if high is not None:
            where.append(mp.step <= high)
        return where

    def points(self, conn: Connection, low: int | None = None, high: int | None = None) -> Sequence[Raw]:
        """(step, value or None for NaN) ascending by step."""
        mp = metric_points.c
        return conn.execute(select(mp.step, mp.value).where(*self.where(low, high)).order_by(mp.step)).all()

    def ends(self, conn: Connection) -> tuple[Raw, Raw] | None:
        """The first and the last point (read by index), or None when the window is empty."""
        mp = metric_points.c
        base = select(mp.step, mp.value).where(*self.where()).limit(1)
        first = conn.execute(base.order_by(mp.step)).first()
        if first is None:
            return None
        return tuple(first), tuple(conn.execute(base.order_by(mp.step.desc())).one())

    def summaries(
        self, conn: Connection, level: int, first_step: int, last_step: int
    ) -> dict[tuple[str, int], rollups.Summary]:
        """The window's buckets at ``level`` in step order; one that reaches outside the window is
        summarized from its points inside instead (its stored row counts points outside)."""
        shift = rollups.BASE_SHIFT + level
        low, high = first_step >> shift, last_step >> shift
        summaries = rollups.read(conn, self.run_id, self.key, level, low, high)
        edges = {
            bucket
            for bucket, outside in (
                (low, self.since_step is not None and low << shift <= self.since_step),
                (high, self.until_step is not None and ((high + 1) << shift) - 1 > self.until_step),
            )
            if outside
        }
        for bucket in edges:
            inside = self.points(conn, bucket << shift, ((bucket + 1) << shift) - 1)
            summaries[(self.key, bucket)] = rollups.Summary.of(inside)
        return summaries


def _downsampled(points: Sequence[Raw], max_points: int) -> list[tuple[int, float]]:
    """All of ``points`` (ascending by step) when they are few enough, else their first and last
    and the min, max and first NaN of (max_points − 2) // (2, or 3 with a NaN) equal step ranges:
    bucket ⌊(step − first)·count / width⌋, whose points start at the first step ≥ first +
    ⌈bucket·width / count⌉."""
    if len(points) <= max_points:
        return [(step, null_to_nan(value)) for step, value in points]
    steps = [step for step, _ in points]
    first, width = steps[0], steps[-1] - steps[0] + 1
    count = (max_points - 2) // (3 if any(value is None for _, value in points) else 2)
    starts = [bisect_left(steps, first - (-bucket * width // count)) for bucket in range(count)]
    slices = zip(starts, [*starts[1:], len(points)], strict=True)
    summaries = [rollups.Summary.of(points[start:end]) for start, end in slices if start < end]
    return _kept(summaries, (points[0], points[-1]))


def _kept(summaries: Iterable[rollups.Summary], ends: tuple[Raw, Raw]) -> list[tuple[int, float]]:
    """The min, max and first NaN of each summary and the window's ``ends``, ascending by step, once
    each."""
    kept: dict[int, float | None] = dict(ends)
    for s in summaries:
        if s.min_step is not None:
            kept[s.min_step] = s.min_value
            kept[s.max_step] = s.max_value
        if s.nan_step is not None:
            kept[s.nan_step] = None
    return [(step, null_to_nan(kept[step])) for step in sorted(kept)]


def points_after(
    conn: Connection, run_id: str | None, after_seq: int, limit: int = 1000
) -> list[StoredPoint]:
    """Points with seq > after_seq (of one run, or of all runs when run_id is None), ascending by
    seq, at most ``limit``: the replay log of the live stream.

    Read in bounded seq windows up to the newest committed seq (``last_seq``): (after_seq, after_seq +
    limit], then windows twice as wide each until ``limit`` points are found, so that PostgreSQL's
    BRIN index on seq (migration 0007) reads only the heap ranges of each window. A run's points are
    filtered from every run's in the window (by their series), as a walk of the seq key from the
    cursor would.
    """
    mp, ms = metric_points.c, metric_series.c
    named = select(mp.seq, ms.run_id, ms.key, mp.step, mp.value, mp.wall_time).join_from(
        metric_points, metric_series, ms.id == mp.series_id
    )
    if run_id is not None:
        named = named.where(ms.run_id == run_id)
    newest = last_seq(conn)
    found: list[StoredPoint] = []
    low, span = after_seq, limit
    while low < newest and len(found) < limit:
        high = min(low + span, newest)
        stmt = named.where(mp.seq > low, mp.seq <= high).order_by(mp.seq).limit(limit - len(found))
        rows = conn.execute(stmt)
        found.extend(
            StoredPoint(row.seq, row.run_id, row.key, row.step, null_to_nan(row.value), row.wall_time)
            for row in rows
        )
        low, span = high, 2 * span
    return found


def last_seq(conn: Connection) -> int:
    """The stream's newest cursor (0 when none): the last seq that a committed insert allocated, from
    its counter in ``stream_counters`` (no index read). That is the newest stored seq, or above it
    with none stored in between (an insert whose points were all stored before). Read it before
    loading history, then stream from it."""
    counter = select(stream_counters.c.value).where(stream_counters.c.name == metric_points.name)
    return conn.execute(counter).scalar_one_or_none() or 0


def summarize_new_points(conn: Connection) -> int | None:
    """PostgreSQL: summarize the ranges of metric_points' BRIN seq index that inserts have filled
    since the last summary, so that the live stream's seq windows stop reading them (autovacuum does
    it too, up to a minute later). Returns the number of ranges summarized; None on SQLite, or when
    another summary or a vacuum of the table holds its lock for more than 50 ms (then skipped)."""
    if conn.dialect.name != "postgresql":
        return None
    try:
        with conn.begin_nested():
            return int(conn.execute(_SUMMARIZE, {"index": metric_points_seq_brin.name}).one()[1])
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
    return None
