"""Per-pair records of a run (the outlier inspector) and its evaluations. Pairs cover the run's
lineage: a resumed run's inspector shows its parent's steps up to the resume point too."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.deps import ReadConn, Run
from backend.api.models import ErrorOut, EvalOut, PairOut, PairSummaryOut
from backend.api.queries import with_keep_probability
from backend.storage import evaluations, lineage, pairs
from backend.storage.pairs import PairOrder

router = APIRouter(prefix="/api", tags=["pairs"])
NOT_FOUND = {404: {"model": ErrorOut, "description": "no such run"}}
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10**9)]


@router.get("/runs/{run_id}/pairs", responses=NOT_FOUND)
def list_pairs(
    run: Run,
    conn: ReadConn,
    step: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    kept: bool | None = None,
    order: PairOrder = "discrepancy",
    descending: bool = True,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[PairOut]:
    """Pair records (optionally of one step, kept or filtered only) ordered by M_i, z or step, with texts
    and each one's keep probability."""
    chain = lineage.segments(conn, run.id)
    rows = pairs.query_pairs(conn, run.id, step, kept, order, descending, limit, offset, chain=chain)
    return with_keep_probability(conn, run.id, rows, chain)


@router.get("/runs/{run_id}/pairs/summary", responses=NOT_FOUND)
def summarize_pairs(
    run: Run, conn: ReadConn, kept: bool = False, limit: Limit = 100, offset: Offset = 0
) -> list[PairSummaryOut]:
    """Per pair over the run; kept=false: pairs filtered out at least once, most often first."""
    chain = lineage.segments(conn, run.id)
    return [
        PairSummaryOut.of(row) for row in pairs.pair_summary(conn, run.id, kept, limit, offset, chain=chain)
    ]


@router.get("/runs/{run_id}/evaluations", responses=NOT_FOUND)
def list_evaluations(run: Run, conn: ReadConn) -> list[EvalOut]:
    return [EvalOut.of(record) for record in evaluations.list_evaluations(conn, run.id)]
