"""Runs: create (JSON or YAML), groups of ablations, list, get, stop, resume, clone, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from backend.api import launch, placement
from backend.api.deps import Ctx, ReadConn, Run
from backend.api.errors import TooLarge, config_invalid
from backend.api.models import CloneIn, ErrorOut, GroupIn, RunOut
from backend.config_files import MAX_CONFIG_BYTES, parse_yaml
from backend.storage import runs
from contracts.config import RunConfig

router = APIRouter(prefix="/api", tags=["runs"])
NOT_FOUND = {404: {"model": ErrorOut, "description": "no such run"}}
CONFLICT = {409: {"model": ErrorOut, "description": "not possible in the run's state"}}
YAML_BODY = {
    "requestBody": {
        "required": True,
        "content": {media: {"schema": {"type": "string"}} for media in ("application/yaml", "text/plain")},
    }
}
Status = Literal["queued", "running", "succeeded", "failed", "stopped"]


@router.post("/runs", status_code=201)
def create_run(config: RunConfig, ctx: Ctx) -> RunOut:
    """Queue a run; 422 names each bad field (``loc``/``field``)."""
    return placement.outs(ctx, launch.launch(ctx, [config]))[0]


@router.post("/runs/yaml", status_code=201, openapi_extra=YAML_BODY, responses={413: {"model": ErrorOut}})
async def create_run_from_yaml(request: Request, ctx: Ctx) -> RunOut:
    """Queue a run from a YAML config (safe_load: no python tags, no anchors/aliases)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CONFIG_BYTES:
            raise TooLarge(f"a config is at most {MAX_CONFIG_BYTES} bytes")
    config = await run_in_threadpool(_yaml_config, body)
    rows = await run_in_threadpool(launch.launch, ctx, [config])
    return (await run_in_threadpool(placement.outs, ctx, rows))[0]


def _yaml_config(body: bytes) -> RunConfig:
    """Parse (within the YAML budgets) and validate, off the event loop."""
    data = parse_yaml(body.decode("utf-8", errors="replace"), "body")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise config_invalid(exc) from exc


@router.post("/groups", status_code=201)
def create_group(body: GroupIn, ctx: Ctx) -> list[RunOut]:
    """The four β-DPO ablations of ``base`` (DPO, +dynamic β, +filtering, β-DPO) in one group."""
    return placement.outs(ctx, launch.ablations(ctx, body.group, body.base))


@router.get("/runs")
def list_runs(
    conn: ReadConn,
    ctx: Ctx,
    status: Status | None = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    preset: Annotated[str | None, Query(max_length=200)] = None,
    group: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> list[RunOut]:
    """Runs, newest first; ``name`` matches a substring, the other filters exactly."""
    rows = runs.list_runs(conn, status, name, preset, group, limit, offset)
    return placement.annotated(conn, ctx.checkpoints_dir, rows)


@router.get("/runs/{run_id}", responses=NOT_FOUND)
def get_run(run: Run, conn: ReadConn, ctx: Ctx) -> RunOut:
    """The run, with whether Resume can work and, while queued, what it waits for."""
    return placement.annotated(conn, ctx.checkpoints_dir, [run])[0]


@router.post("/runs/{run_id}/stop", responses=NOT_FOUND)
def stop_run(run_id: str, ctx: Ctx) -> RunOut:
    """Queued → stopped at once; running → stop requested (the trainer checkpoints, then stops)."""
    return placement.outs(ctx, [launch.stop(ctx, run_id)])[0]


@router.post("/runs/{run_id}/resume", status_code=201, responses={**NOT_FOUND, **CONFLICT})
def resume_run(run: Run, ctx: Ctx) -> RunOut:
    """A NEW queued run (parent_id = this run) continuing from this stopped/failed run's checkpoint."""
    return placement.outs(ctx, [launch.resume(ctx, run)])[0]


@router.post("/runs/{run_id}/clone", status_code=201, responses=NOT_FOUND)
def clone_run(run: Run, body: CloneIn, ctx: Ctx) -> RunOut:
    """A new queued run with this run's config and ``overrides`` applied (parent_id = this run)."""
    return placement.outs(ctx, [launch.clone(ctx, run, body.overrides)])[0]


@router.delete("/runs/{run_id}", status_code=204, responses={**NOT_FOUND, **CONFLICT})
def delete_run(run_id: str, ctx: Ctx) -> Response:
    """Delete a run that is not running, with its metrics, pairs, evaluations and checkpoint."""
    launch.delete(ctx, run_id)
    return Response(status_code=204)
