"""The ingest API: external trainers (``import alignscope``) open a run, stream rows, finish it.
Token-checked like every route; every message is idempotent (contracts.ingest)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool

from backend.api import ingest_calls
from backend.api.deps import Ctx
from backend.api.models import ErrorOut
from contracts.ingest import RUN_ID_PATTERN, IngestAck, IngestBatch, RunFinish, RunOpen

router = APIRouter(prefix="/api/ingest", tags=["ingest"])
RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN, description="The client's run id: 32 hex digits.")]
ERRORS = {code: {"model": ErrorOut} for code in (404, 409, 413, 422)}


def _body(model: type) -> dict:
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.put("/runs/{run_id}", responses=ERRORS, openapi_extra=_body(RunOpen))
async def open_run(run_id: RunId, request: Request, ctx: Ctx) -> IngestAck:
    """Create the external run (running) or find it; 409 when the id is a native run's."""
    message = await ingest_calls.body(request, RunOpen)
    return await run_in_threadpool(ingest_calls.open_run, ctx, run_id, message)


@router.post("/runs/{run_id}/batch", responses=ERRORS, openapi_extra=_body(IngestBatch))
async def store_batch(run_id: RunId, request: Request, ctx: Ctx) -> IngestAck:
    """Store points, pair records and texts (a row already stored is skipped); renews the heartbeat."""
    batch = await ingest_calls.body(request, IngestBatch)
    return await run_in_threadpool(ingest_calls.store_batch, ctx, run_id, batch)


@router.post("/runs/{run_id}/finish", responses=ERRORS, openapi_extra=_body(RunFinish))
async def finish_run(run_id: RunId, request: Request, ctx: Ctx) -> IngestAck:
    """Set the run's final status (a finished run is left as it is)."""
    message = await ingest_calls.body(request, RunFinish)
    return await run_in_threadpool(ingest_calls.finish_run, ctx, run_id, message)
