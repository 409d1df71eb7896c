"""Experiment presets and their groups: list the presets, launch one as a group (a queued group row,
then the task ``experiments.run`` wakes a worker, which runs the whole group), list the groups, and
one group with its runs and its summary (ours next to the paper's, verdicts, the figure's series)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from backend.api.deps import Ctx, ReadConn
from backend.api.errors import NotFound
from backend.api.models import ErrorOut, Out, RunOut
from backend.config_files import ConfigError
from backend.experiment_spec import (
    ExperimentSpec,
    group_name,
    list_experiments,
    load_experiment,
    run_count,
    step_counts,
    wants_gpu,
)
from backend.queue import experiment_queue
from backend.storage import experiment_groups, runs
from backend.storage.experiment_groups import GroupRow, GroupSummary

router = APIRouter(prefix="/api", tags=["experiments"])
NO_EXPERIMENT = {404: {"model": ErrorOut, "description": "no such experiment preset"}}
NO_GROUP = {404: {"model": ErrorOut, "description": "no such experiment group"}}
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class ExperimentOut(Out):
    """A preset: ``runs`` / ``quick_runs`` = runs its group records (reward model included)."""

    name: str
    title: str
    description: str
    runtime_note: str
    kind: str
    runs: int
    quick_runs: int
    steps: list[int] = Field(default_factory=list, description="the runs' optim.max_steps (distinct)")
    quick_steps: list[int] = Field(default_factory=list, description="the same with --quick")
    seeds: list[int]
    citation: str


class LaunchIn(BaseModel):
    """``quick``: the preset's small version; ``seeds``: replace the preset's seeds."""

    model_config = ConfigDict(extra="forbid")

    quick: bool = False
    seeds: list[Seed] | None = Field(default=None, min_length=1, max_length=20)


class GroupOut(Out):
    """A group row; ``run_counts``: its runs by status; ``planned_runs``: how many it will record."""

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
    run_counts: dict[str, int]
    has_summary: bool

    @classmethod
    def of(cls, row: GroupRow, counts: dict[str, int]) -> GroupOut:
        fields = {name: getattr(row, name) for name in cls.model_fields if hasattr(row, name)}
        return cls(**fields, run_counts=counts)


class GroupDetailOut(GroupOut):
    """A group with its runs in launch order and its summary (null until the runs have finished)."""

    runs: list[RunOut]
    summary: GroupSummary | None


def _spec(name: str) -> ExperimentSpec:
    if name not in list_experiments():  # names only: a path in the URL never reaches the loader
        raise NotFound(f"experiment '{name[:64]}' not found")
    return load_experiment(name)


def _group(conn: Connection, group: str) -> GroupRow:
    row = experiment_groups.get_group(conn, group) if len(group) <= 200 else None
    if row is None:
        raise NotFound(f"group '{group[:64]}' not found")
    return row


@router.get("/experiments")
def list_presets() -> list[ExperimentOut]:
    """The experiment presets that load, with how many runs a group of each records."""
    found = []
    for name in list_experiments():
        try:
            spec = load_experiment(name)
            counts = run_count(spec, False), run_count(spec, True)
            steps = step_counts(spec, False), step_counts(spec, True)
        except ConfigError:
            continue
        found.append(ExperimentOut(
            name=name, title=spec.title, description=spec.description.strip(), runtime_note=spec.runtime_note,
            kind=spec.summary, runs=counts[0], quick_runs=counts[1], steps=steps[0], quick_steps=steps[1],
            seeds=spec.seeds,
            citation=spec.paper.get("citation", ""),
        ))  # fmt: skip
    return found


@router.post("/experiments/{name}", status_code=201, responses=NO_EXPERIMENT)
def launch_experiment(name: str, ctx: Ctx, body: Annotated[LaunchIn | None, Body()] = None) -> GroupOut:
    """Create the group (queued) and wake a worker to run it; the reply is the new group."""
    spec, launch = _spec(name), body or LaunchIn()
    count = run_count(spec, launch.quick, launch.seeds)
    with ctx.engine.begin() as conn:
        group = experiment_groups.new_group(
            conn, group_name(spec, launch.quick), spec.name, spec.title, launch.quick, launch.seeds, count
        )
        row = _group(conn, group)
    ctx.enqueuer.enqueue_experiment(group, experiment_queue(wants_gpu(spec)))
    return GroupOut.of(row, {})


@router.get("/groups")
def list_groups(
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> list[GroupOut]:
    """Experiment groups, newest first, each with its runs counted by status."""
    rows = experiment_groups.list_groups(conn, limit, offset)
    counts = experiment_groups.run_counts(conn, [row.id for row in rows])
    return [GroupOut.of(row, counts[row.id]) for row in rows]


@router.get("/groups/{group}", responses=NO_GROUP)
def get_group(group: str, conn: ReadConn) -> GroupDetailOut:
    """The group, its runs (launch order, with status and progress) and its summary when stored."""
    row = _group(conn, group)
    members = runs.list_runs(conn, group=group, limit=10_000)[::-1]
    base = GroupOut.of(row, experiment_groups.run_counts(conn, [group])[group])
    return GroupDetailOut(**dict(base), runs=[RunOut.of(r) for r in members], summary=row.summary)
