"""A run's lineage: the chain of runs whose steps make up its history.

A resumed run (``resume_step`` set) continues its parent after that step; the parent may itself be a
resume. The history of the newest run is then the oldest ancestor's steps up to the first resume
point, the next run's steps up to the next one, …, and the run's own steps after its resume point.
Steps an ancestor logged after the point its child resumed from (a failed run's steps past its last
checkpoint) are superseded and left out. A clone (``parent_id`` without ``resume_step``) starts from
step 0: its lineage is itself.

``Segment.where(step_column, run_column)`` turns a segment into SQL, so metric, pair and export
readers select a lineage with one condition.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from backend.storage.tables import runs

MAX_DEPTH = 100  # a resume chain longer than this is cut (and a cycle, which parent_id cannot make, too)


@dataclass(frozen=True, slots=True)
class Segment:
    """The steps ``after_step`` < step ≤ ``until_step`` of ``run_id`` (None: unbounded)."""

    run_id: str
    name: str
    after_step: int | None
    until_step: int | None

    def where(self, step: ColumnElement, run_id: ColumnElement) -> ColumnElement[bool]:
        """This segment's rows as a SQL condition on a table's step and run_id columns."""
        return and_(run_id == self.run_id, self.steps(step))

    def steps(self, step: ColumnElement) -> ColumnElement[bool]:
        """This segment's step window as a SQL condition on a step column."""
        parts = [step > self.after_step] if self.after_step is not None else []
        if self.until_step is not None:
            parts.append(step <= self.until_step)
        return and_(true(), *parts)

    def holds(self, step: int) -> bool:
        """Whether ``step`` belongs to this segment."""
        above = self.after_step is None or step > self.after_step
        return above and (self.until_step is None or step <= self.until_step)


def segments(conn: Connection, run_id: str) -> list[Segment]:
    """The lineage of ``run_id``, oldest first; ``[]`` when the run does not exist."""
    r = runs.c
    chain: list[Segment] = []
    until: int | None = None
    current: str | None = run_id
    while current is not None and len(chain) < MAX_DEPTH:
        row = conn.execute(
            select(r.id, r.name, r.parent_id, r.resume_step).where(r.id == current)
        ).one_or_none()
        if row is None:
            break
        resumed = row.resume_step is not None and row.parent_id is not None
        after = row.resume_step if resumed else None
        chain.append(Segment(row.id, row.name, after, until))
        if row.id in {s.run_id for s in chain[:-1]}:
            break
        until, current = after, (row.parent_id if resumed else None)
    return chain[::-1]


def where(lineage: list[Segment], step: ColumnElement, run_id: ColumnElement) -> ColumnElement[bool]:
    """The rows of every segment of ``lineage`` (see ``Segment.where``)."""
    return or_(*(segment.where(step, run_id) for segment in lineage))


def segment_of(lineage: list[Segment], step: int) -> Segment | None:
    """The segment that supplies ``step``, or None."""
    return next((s for s in lineage if s.holds(step)), None)
