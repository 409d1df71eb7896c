"""A run's metric keys, downsampled series, and exports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from backend.api.deps import Ctx, ReadConn, Run
from backend.api.models import ErrorOut, MetricsOut
from backend.api.queries import ExportFormat, ExportWhat, export_file, keys_of, metrics_of
from backend.storage import lineage, metrics

router = APIRouter(prefix="/api", tags=["metrics"])
NOT_FOUND = {404: {"model": ErrorOut, "description": "no such run"}}
MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
EXPORTED = {200: {"content": {media: {} for media in MEDIA_TYPES.values()}}, **NOT_FOUND}
Keys = Annotated[list[str] | None, Query(max_length=100)]
MaxPoints = Annotated[int, Query(ge=metrics.MIN_POINTS, le=100_000)]


@router.get("/runs/{run_id}/keys", responses=NOT_FOUND)
def list_keys(run: Run, conn: ReadConn) -> list[str]:
    """The metric keys of the run's lineage (a resumed run: its parent's too)."""
    return keys_of(conn, lineage.segments(conn, run.id))


@router.get("/runs/{run_id}/metrics", responses=NOT_FOUND)
def get_metrics(run: Run, conn: ReadConn, key: Keys = None, max_points: MaxPoints = 1000) -> MetricsOut:
    """Series of ``key`` (repeatable; all keys when absent), at most ``max_points`` points each:
    min/max buckets keep spikes, first and last points are always kept, NaN/inf are null."""
    return metrics_of(conn, run.id, key, max_points)


@router.get("/runs/{run_id}/export", response_class=FileResponse, responses=EXPORTED)
def export_run(
    run: Run, ctx: Ctx, what: ExportWhat = "metrics", format: ExportFormat = "csv"
) -> FileResponse:
    """The run's metric points or pair records as a CSV or Parquet download."""
    path = export_file(ctx.reads, ctx.settings.data_dir / "exports", run.id, what, format)
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[format],
        filename=f"{run.id}-{what}.{format}",
        background=BackgroundTask(path.unlink),
    )
