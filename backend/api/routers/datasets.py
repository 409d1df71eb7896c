"""Datasets: streamed, size-capped upload under a generated name; list; preview with validation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
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
    responses={
        200: {"model": DatasetOut, "description": "the same file was already stored: that dataset"},
        413: {"model": ErrorOut, "description": "file, line, rows or decompressed size too large"},
        422: {"model": ErrorOut},
    },
)
async def upload_dataset(request: Request, response: Response, ctx: Ctx) -> DatasetOut:
    """Store the multipart ``file`` (.jsonl, .json, their .gz, .parquet) after validating every row;
    the same file again returns the stored dataset (200, ``reused``) instead of a second copy."""
    received = await uploads.receive(request, ctx.datasets_dir, ctx.options.upload_caps())
    dataset = await run_in_threadpool(catalog.register, received, ctx.options.read_budget())
    if dataset.reused:
        response.status_code = 200
    return dataset


@router.get("/datasets")
def list_datasets(ctx: Ctx) -> list[DatasetOut]:
    return catalog.listing(ctx.datasets_dir)


@router.get("/datasets/{name}/preview", responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}})
def preview_dataset(name: str, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> PreviewOut:
    """The first ``limit`` valid rows and the validation report of the first records (line numbers)."""
    options = ctx.options
    return catalog.preview(ctx.datasets_dir, name, limit, options.read_budget(), options.preview_scan_rows)
