"""Experiment groups: one row per group launched from an experiment preset (``alignscope experiment``
or POST /api/experiments/NAME), moving ``queued → running → succeeded | failed``, and its summary.

The group's runs are ordinary ``runs`` rows whose ``group_name`` is the group's id. The summary is a
``GroupSummary`` document stored as JSON: our table (numbers with 95 % intervals, in display units:
win rates in %), the paper's numbers and citation, one verdict per comparison, and the figure as
plain series (no pickled or HTML figure), so a dashboard on another machine than the worker's can
draw it. Functions take a Connection inside the caller's transaction and never commit. Times are UTC
unix seconds.

A running group's ``updated_at`` is its heartbeat: the process running it (``alignscope experiment``)
renews it every few seconds (``touch_group``), and the reconciler fails a running group whose
heartbeat is stale (``fail_stale``: its command died with its worker); the runs it finished are kept.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import Connection

from backend.storage.tables import GROUP_STATUSES, experiment_groups, runs

ACTIVE = ("queued", "running")
HEARTBEAT_LOST = (
    "the worker running this group stopped sending heartbeats (killed?); runs finished so far are kept — "
    "summarize them with `alignscope experiment --summarize {group}` (the reconciler does not: it would "
    "import torch)"
)
Category = Literal["agrees", "disagrees", "weaker", "noisy", "none"]


class Document(BaseModel):
    """Base of the summary's parts: unknown keys rejected, NaN/inf written as null."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="null")


class Estimate(Document):
    """A number and its 95 % interval (``low``/``high`` None for a plain number); display units."""

    value: float | None
    low: float | None = None
    high: float | None = None


class Column(Document):
    """A column of our table; ``format``: percent (a win rate in %), probability (0..1), step."""

    name: str
    format: Literal["percent", "probability", "step"] = "percent"


class TableRow(Document):
    label: str
    cells: list[Estimate | None]


class Table(Document):
    """Our numbers: one row per method (run label), one cell per column; ``note`` says how to read it."""

    columns: list[Column]
    rows: list[TableRow]
    note: str = ""


class PaperRow(Document):
    label: str
    values: list[float | None]


class Paper(Document):
    """The paper's numbers (rows × columns, as printed) or its qualitative claims, and the citation."""

    citation: str = ""
    columns: list[str] = []
    rows: list[PaperRow] = []
    claims: list[str] = []


class Verdict(Document):
    """One comparison with the paper. Win rates: ``method`` − baseline at ``column``, ``difference``
    [d, low, high] in points (Newcombe 95 %), ``paper_direction`` the paper's difference in points,
    ``paper_basis`` the paper's column it is read from (or "mean over its N columns"). Toy: ``claim``
    checked on our numbers. ``text`` is the verdict as a plain sentence."""

    verdict: str
    category: Category
    text: str
    method: str | None = None
    column: str | None = None
    claim: str | None = None
    difference: list[float | None] | None = None
    paper_direction: float | None = None
    paper_basis: str | None = None


class Series(Document):
    """One trace: ``x`` categories or steps, ``y`` values; ``low``/``high`` its 95 % interval
    (``intervals`` figures only)."""

    name: str
    x: list[float | str]
    y: list[float | None]
    low: list[float | None] | None = None
    high: list[float | None] | None = None


class Panel(Document):
    title: str = ""
    y_title: str = ""
    series: list[Series]


class Figure(Document):
    """``intervals``: one panel, a point per (series, category) with its interval as an error bar,
    the series side by side in each category; ``lines``: panels of line series over steps."""

    kind: Literal["intervals", "lines"]
    title: str
    x_title: str = ""
    panels: list[Panel]


class AuditRow(Document):
    """The noise score against planted flips for one (method, noise level), pooled over seeds: ROC AUC
    and precision@k (k = pairs planted) as fractions with 95 % intervals; base_rate = k / n."""

    method: str
    column: str
    n: int
    k: int
    hits: int
    auc: Estimate
    precision: Estimate
    base_rate: float


class Audit(Document):
    rows: list[AuditRow]
    note: str = ""


class GroupRun(Document):
    """One run of the summary: its place in the table (label, column, seed), outcome and run time."""

    run_id: str
    label: str
    column: str
    seed: int
    status: str
    seconds: float | None


class GroupSummary(Document):
    """The whole summary of a group (module docstring); ``headline`` counts the verdicts in words."""

    group: str
    experiment: str
    title: str
    description: str = ""
    kind: Literal["win_rates", "toy", "label_noise"]
    quick: bool
    baseline: str
    runs: list[GroupRun]
    table: Table
    paper: Paper
    verdicts: list[Verdict]
    headline: str
    figure: Figure
    audit: Audit | None = None
    not_succeeded: list[str] = []
    created_at: float


@dataclass(frozen=True, slots=True)
class GroupRow:
    """One row of ``experiment_groups``; ``seeds`` None means the preset's own. ``summary`` is read
    by ``get_group`` only (listings leave it None and say ``has_summary``)."""

    id: str
    experiment: str
    title: str
    status: str
    quick: bool
    seeds: list[int] | None
    planned_runs: int
    message: str | None
    error: str | None
    created_at: float
    updated_at: float
    has_summary: bool
    summary: GroupSummary | None = None


_LISTED = [c for c in experiment_groups.c if c.name != "summary"]
_HAS_SUMMARY = experiment_groups.c.summary.is_not(None).label("has_summary")


def _row(mapping: dict) -> GroupRow:
    values = dict(mapping)
    values["seeds"] = json.loads(values["seeds"]) if values["seeds"] else None
    values["has_summary"] = bool(values["has_summary"])
    summary = values.pop("summary", None)
    return GroupRow(**values, summary=GroupSummary.model_validate_json(summary) if summary else None)


def create_group(
    conn: Connection,
    group: str,
    experiment: str,
    title: str,
    quick: bool,
    seeds: list[int] | None,
    planned_runs: int,
    status: str = "queued",
) -> bool:
    """Insert the group; False (nothing changed) when a group with that id exists."""
    if status not in GROUP_STATUSES:
        raise ValueError(f"group status must be one of {GROUP_STATUSES}, got {status!r}")
    if conn.execute(select(experiment_groups.c.id).where(experiment_groups.c.id == group)).first():
        return False
    now = time.time()
    conn.execute(
        experiment_groups.insert().values(
            id=group, experiment=experiment, title=title, status=status, quick=quick,
            seeds=json.dumps(seeds) if seeds else None, planned_runs=planned_runs,
            created_at=now, updated_at=now,
        )
    )  # fmt: skip
    return True


def new_group(
    conn: Connection,
    base: str,
    experiment: str,
    title: str,
    quick: bool,
    seeds: list[int] | None,
    planned_runs: int,
    status: str = "queued",
) -> str:
    """Insert a group named ``base``, or ``base-2``, ``base-3``… when taken; returns the id used."""
    for attempt in range(1, 1000):
        group = base if attempt == 1 else f"{base}-{attempt}"
        if create_group(conn, group, experiment, title, quick, seeds, planned_runs, status):
            return group
    raise RuntimeError(f"no free group id like {base!r}")


def get_group(conn: Connection, group: str) -> GroupRow | None:
    """The group, or None."""
    stmt = select(experiment_groups, _HAS_SUMMARY).where(experiment_groups.c.id == group)
    row = conn.execute(stmt).one_or_none()
    return None if row is None else _row(row._mapping)


def list_groups(
    conn: Connection, limit: int = 100, offset: int = 0, status: str | None = None
) -> list[GroupRow]:
    """Groups (only those in ``status`` when given), newest first, without their summaries
    (``has_summary`` says whether one is stored)."""
    g = experiment_groups.c
    stmt = select(*_LISTED, _HAS_SUMMARY)
    if status is not None:
        stmt = stmt.where(g.status == status)
    stmt = stmt.order_by(g.created_at.desc(), g.id).limit(limit).offset(offset)
    return [_row(row._mapping) for row in conn.execute(stmt)]


def _change(conn: Connection, group: str, only_from: tuple[str, ...] | None, **values: object) -> bool:
    where = experiment_groups.c.id == group
    if only_from is not None:
        where = where & experiment_groups.c.status.in_(only_from)
    stmt = update(experiment_groups).where(where).values(updated_at=time.time(), **values)
    return conn.execute(stmt).rowcount == 1


def claim_group(conn: Connection, group: str) -> bool:
    """queued → running; False when it is not queued (a duplicate delivery, or already started)."""
    return _change(conn, group, ("queued",), status="running", error=None)


def start_group(conn: Connection, group: str, planned_runs: int, message: str) -> bool:
    """A queued or running group is running ``planned_runs`` runs (the CLI's start); False otherwise."""
    return _change(conn, group, ACTIVE, status="running", planned_runs=planned_runs, message=message)


def touch_group(conn: Connection, group: str) -> bool:
    """Renew the heartbeat (``updated_at``) of a running group; False when it is not running."""
    return _change(conn, group, ("running",))


def fail_stale(conn: Connection, stale_after_s: float, now: float | None = None) -> list[str]:
    """Running groups whose heartbeat is older than ``stale_after_s`` → failed with error
    ``HEARTBEAT_LOST`` (naming the group); returns their ids. Each update is conditional on the
    heartbeat still being stale, so one renewed meanwhile is left running."""
    now = time.time() if now is None else now
    g = experiment_groups.c
    stale = and_(g.status == "running", g.updated_at < now - stale_after_s)
    failed = []
    for group in conn.execute(select(g.id).where(stale).order_by(g.id)).scalars():
        error = HEARTBEAT_LOST.format(group=group)
        values = {"status": "failed", "error": error, "message": "failed", "updated_at": now}
        if conn.execute(update(experiment_groups).where(stale, g.id == group).values(**values)).rowcount:
            failed.append(group)
    return failed


def set_message(conn: Connection, group: str, message: str) -> bool:
    """What the group is doing now (a stage, the run in progress), while it is queued or running."""
    return _change(conn, group, ACTIVE, message=message)


def finish_group(
    conn: Connection, group: str, status: str, error: str | None = None, *, only_active: bool = True
) -> bool:
    """→ ``status`` (succeeded | failed) with ``error``; by default only from queued/running, so a
    watcher that sees the process die never overwrites the outcome the process recorded itself."""
    if status not in ("succeeded", "failed"):
        raise ValueError(f"a group finishes as succeeded or failed, got {status!r}")
    message = "finished" if status == "succeeded" else "failed"
    return _change(conn, group, ACTIVE if only_active else None, status=status, error=error, message=message)


def store_summary(conn: Connection, group: str, summary: GroupSummary) -> bool:
    """Store (or replace) the group's summary; False when the group does not exist."""
    return _change(conn, group, None, summary=summary.model_dump_json())


def run_counts(conn: Connection, groups: list[str]) -> dict[str, dict[str, int]]:
    """group → {run status → number of runs} for the given groups (groups without runs: {})."""
    counts: dict[str, dict[str, int]] = {group: {} for group in groups}
    if not groups:
        return counts
    stmt = (
        select(runs.c.group_name, runs.c.status, func.count())
        .where(runs.c.group_name.in_(groups))
        .group_by(runs.c.group_name, runs.c.status)
    )
    for group, status, count in conn.execute(stmt):
        counts[group][status] = count
    return counts
