"""Min/max rollups of metric series: the bucket layout, summaries of new points, upsert and reads.

Each series (run_id, key) is summarized at levels 0..TOP_LEVEL. Bucket ``b`` of level ``l`` holds
the steps with ``step >> (BASE_SHIFT + l) == b``, i.e. [b·w, (b+1)·w) for a width w = 64·2^l (the
shift floors, so negative steps bucket like the others). TOP_LEVEL 7 (w = 8,192) puts 10M steps in
1,221 top-level buckets. A bucket's row holds:

- ``count``: every stored point, NaN included;
- ``min_value``/``min_step`` and ``max_value``/``max_step``: the extreme non-NaN values (±inf
  included) and the step where each occurs (on a tie, the smaller step); NULL when all are NaN;
- ``nan_step``: the first step whose value is NaN, NULL when none.

New points are folded in by ``fold_in`` in the transaction that stores them: ``summarize`` (level 0)
and ``coarser`` (each level from the one below) build the rows in Python, which is cheaper than the
same aggregate in SQL on SQLite and, on PostgreSQL, runs while the server is still inserting the
points (``bulk.insert_rows_while``); ``bulk.upsert_rows`` merges them into the stored rows with
``INSERT … ON CONFLICT DO UPDATE``.

Rollup rows stay keyed by (run_id, level, key, bucket), not by series id: every read names the run,
the level and the key, so their primary key serves it; ``fold_in`` reads back the points of a partly
duplicate batch by their ``seq``.

Migration 0002 builds the same rows from stored points: changing BASE_SHIFT or TOP_LEVEL needs a
migration that rebuilds the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

from sqlalchemy import select
from sqlalchemy.engine import Connection

from backend.storage.bulk import upsert_rows
from backend.storage.tables import metric_points, metric_rollups
from contracts.events import MetricPoint

BASE_SHIFT = 6  # level 0 buckets hold 64 steps
TOP_LEVEL = 7
_VALUE = itemgetter(1)

_COLUMNS = (
    "run_id",
    "level",
    "key",
    "bucket",
    "count",
    "min_value",
    "min_step",
    "max_value",
    "max_step",
    "nan_step",
)


def _takes(side: str, better: str) -> str:
    """SQL: the incoming extreme (``excluded``) replaces the stored one (NULL when all NaN)."""
    new, old = f"excluded.{side}", f"metric_rollups.{side}"
    return (
        f"{new}_value {better} {old}_value OR {old}_value IS NULL"
        f" OR ({new}_value = {old}_value AND {new}_step < {old}_step)"
    )


_TAKE_MIN, _TAKE_MAX = _takes("min", "<"), _takes("max", ">")
_ON_CONFLICT = (
    " ON CONFLICT (run_id, level, key, bucket) DO UPDATE SET"
    " count = metric_rollups.count + excluded.count,"
    f" min_value = CASE WHEN {_TAKE_MIN} THEN excluded.min_value ELSE metric_rollups.min_value END,"
    f" min_step = CASE WHEN {_TAKE_MIN} THEN excluded.min_step ELSE metric_rollups.min_step END,"
    f" max_value = CASE WHEN {_TAKE_MAX} THEN excluded.max_value ELSE metric_rollups.max_value END,"
    f" max_step = CASE WHEN {_TAKE_MAX} THEN excluded.max_step ELSE metric_rollups.max_step END,"
    " nan_step = CASE WHEN excluded.nan_step < metric_rollups.nan_step OR metric_rollups.nan_step IS NULL"
    " THEN excluded.nan_step ELSE metric_rollups.nan_step END"
)


@dataclass(slots=True)
class Summary:
    """One bucket's summary (see the module docstring); steps are optimizer steps."""

    count: int = 0
    min_value: float | None = None
    min_step: int | None = None
    max_value: float | None = None
    max_step: int | None = None
    nan_step: int | None = None

    @classmethod
    def of(cls, points: Sequence[tuple[int, float | None]]) -> Summary:
        """The summary of (step, value) points ascending by step (min/max return the first of
        equals: the smaller step), NaN as None (NULL)."""
        real = [point for point in points if point[1] is not None]
        low, high = min(real, key=_VALUE, default=(None, None)), max(real, key=_VALUE, default=(None, None))
        nan_step = next((step for step, value in points if value is None), None)
        return cls(len(points), low[1], low[0], high[1], high[0], nan_step)

    def add(self, step: int, value: float | None) -> None:
        """Count the point (step, value); a NaN value may come as NaN or as None (NULL)."""
        self.count += 1
        if value is None or value != value:
            if self.nan_step is None or step < self.nan_step:
                self.nan_step = step
            return
        if self.min_step is None:
            self.min_value, self.min_step, self.max_value, self.max_step = value, step, value, step
            return
        if value < self.min_value or (value == self.min_value and step < self.min_step):
            self.min_value, self.min_step = value, step
        if value > self.max_value or (value == self.max_value and step < self.max_step):
            self.max_value, self.max_step = value, step

    def values(self) -> tuple[int, float | None, int | None, float | None, int | None, int | None]:
        """(count, min_value, min_step, max_value, max_step, nan_step)."""
        return (self.count, self.min_value, self.min_step, self.max_value, self.max_step, self.nan_step)

    def merge(self, other: Summary) -> None:
        """Fold ``other`` (a disjoint set of points) into this summary."""
        count = self.count + other.count
        if other.min_step is not None:
            self.add(other.min_step, other.min_value)
            self.add(other.max_step, other.max_value)
        if other.nan_step is not None:
            self.add(other.nan_step, None)
        self.count = count


def summarize(points: Iterable[MetricPoint]) -> dict[tuple[str, int], Summary]:
    """Level-0 summaries of metric points (NaN values as NaN or None), keyed by (key, bucket)."""
    level0: dict[tuple[str, int], Summary] = {}
    get = level0.get
    for point in points:
        step = point.step
        bucket = (point.key, step >> BASE_SHIFT)
        summary = get(bucket)
        if summary is None:
            summary = level0[bucket] = Summary()
        summary.add(step, point.value)
    return level0


def coarser(summaries: Mapping[tuple[str, int], Summary]) -> dict[tuple[str, int], Summary]:
    """The next level up: buckets b and b+1 (b even) of one key merge into bucket b >> 1."""
    parents: dict[tuple[str, int], Summary] = {}
    for (key, bucket), summary in summaries.items():
        parent = parents.get((key, bucket >> 1))
        if parent is None:
            parents[(key, bucket >> 1)] = Summary(*summary.values())
        else:
            parent.merge(summary)
    return parents


def fold_in(
    conn: Connection,
    run_id: str,
    first_seq: int,
    points: Sequence[MetricPoint],
    inserted: int,
    level0: Mapping[tuple[str, int], Summary],
) -> None:
    """Fold newly stored points into every level's rows, in the inserting transaction, in primary-key
    order (concurrent writers lock rows in one order).

    points: the batch whose rows were given seq first_seq, first_seq + 1, … (a block no other writer
    uses); inserted: how many of them were stored (the others hit an existing (key, step)): all, none,
    or those whose seq is now in metric_points; level0: ``summarize(points)``, used when all were.
    """
    if not inserted:
        return
    if inserted < len(points):
        last_seq = first_seq + len(points) - 1
        stored = select(metric_points.c.seq).where(metric_points.c.seq.between(first_seq, last_seq))
        level0 = summarize(points[seq - first_seq] for seq in conn.execute(stored).scalars())
    rows = []
    level = level0
    for number in range(TOP_LEVEL + 1):
        rows.extend((run_id, number, key, bucket, *s.values()) for (key, bucket), s in sorted(level.items()))
        if number < TOP_LEVEL:
            level = coarser(level)
    upsert_rows(conn, metric_rollups, _COLUMNS, rows, _ON_CONFLICT)


def level_for(first_step: int, last_step: int, buckets: int) -> int:
    """The finest level whose buckets over [first_step, last_step] number at most ``buckets``
    (TOP_LEVEL when none does)."""
    for level in range(TOP_LEVEL + 1):
        shift = BASE_SHIFT + level
        if (last_step >> shift) - (first_step >> shift) + 1 <= buckets:
            return level
    return TOP_LEVEL


def read(
    conn: Connection, run_id: str, key: str, level: int, first_bucket: int, last_bucket: int
) -> dict[tuple[str, int], Summary]:
    """The stored summaries of ``key`` at ``level`` in buckets first..last, ascending, keyed by
    (key, bucket) like ``summarize``'s."""
    r = metric_rollups.c
    stmt = (
        select(r.bucket, r.count, r.min_value, r.min_step, r.max_value, r.max_step, r.nan_step)
        .where(r.run_id == run_id, r.level == level, r.key == key)
        .where(r.bucket >= first_bucket, r.bucket <= last_bucket)
        .order_by(r.bucket)
    )
    return {(key, row[0]): Summary(*row[1:]) for row in conn.execute(stmt)}
