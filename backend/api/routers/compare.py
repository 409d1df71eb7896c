"""Several runs' series overlaid."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.deps import ReadConn
from backend.api.models import CompareOut, ErrorOut
from backend.api.queries import compare_of
from backend.storage import metrics

router = APIRouter(prefix="/api", tags=["compare"])


@router.get("/compare", responses={404: {"model": ErrorOut, "description": "no such run"}})
def compare(
    conn: ReadConn,
    run: Annotated[list[str], Query(min_length=1, max_length=20)],
    key: Annotated[list[str], Query(min_length=1, max_length=50)],
    max_points: Annotated[int, Query(ge=metrics.MIN_POINTS, le=100_000)] = 1000,
) -> CompareOut:
    """Each ``run``'s series of each ``key`` (both repeatable), downsampled like GET metrics."""
    return compare_of(conn, run, key, max_points)
