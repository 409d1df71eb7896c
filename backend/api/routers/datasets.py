"""Datasets: streamed, size-capped upload under a generated name; list; preview with validation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from backend.api import catalog, uploads
from backend.api.deps import Ctx
from backend.api.models import DatasetOut, ErrorOut, PreviewOut

router = APIRouter(prefix="/api", tags=["datasets"])
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post(
    "/datasets",
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    responses={413: {"model": ErrorOut, "description": "file or line too large"}, 422: {"model": ErrorOut}},
)
async def upload_dataset(request: Request, ctx: Ctx) -> DatasetOut:
    """Store the multipart ``file`` (.jsonl, .json, their .gz, .parquet) and validate every row."""
    caps = ctx.options
    received = await uploads.receive(
        request, ctx.datasets_dir, caps.max_upload_bytes, caps.max_line_bytes, caps.max_decompressed_bytes
    )
    return await run_in_threadpool(catalog.register, received)


@router.get("/datasets")
def list_datasets(ctx: Ctx) -> list[DatasetOut]:
    return catalog.listing(ctx.datasets_dir)


@router.get("/datasets/{name}/preview", responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}})
def preview_dataset(name: str, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> PreviewOut:
    """The first ``limit`` valid rows and the validation report of the first records (line numbers)."""
    return catalog.preview(ctx.datasets_dir, name, limit, ctx.options.preview_scan_rows)
