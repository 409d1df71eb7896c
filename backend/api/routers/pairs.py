"""Per-pair records of a run (the outlier inspector) and its evaluations. Pairs cover the run's
lineage: a resumed run's inspector shows its parent's steps up to the resume point too."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.advice import BetaAdviceOut, advice_for
from backend.api.deps import ReadConn, Run
from backend.api.models import ErrorOut, EvalOut, PairOut, PairSummaryOut
from backend.api.queries import with_keep_probability
from backend.storage import evaluations, lineage, pairs
from backend.storage.pairs import PairOrder, SummaryOrder

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
    return with_keep_probability(conn, run, rows, chain)


@router.get("/runs/{run_id}/pairs/summary", responses=NOT_FOUND)
def summarize_pairs(
    run: Run,
    conn: ReadConn,
    kept: bool | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
    order: SummaryOrder = "filtered",
) -> list[PairSummaryOut]:
    """Per pair over the run (over its lineage). order=filtered: most often filtered first, and
    without ``kept`` only the pairs filtered out at least once; order=noise_score: most suspicious
    first, every pair unless ``kept`` says otherwise."""
    if kept is None and order == "filtered":
        kept = False
    chain = lineage.segments(conn, run.id)
    rows = pairs.pair_summary(conn, run.id, kept, limit, offset, chain=chain, order=order)
    return [PairSummaryOut.of(row) for row in rows]


@router.get("/runs/{run_id}/beta_advice", responses={**NOT_FOUND, 409: {"model": ErrorOut}})
def beta_advice(
    run: Run, conn: ReadConn, first_steps: Annotated[int, Query(ge=3, le=10_000)] = 10
) -> BetaAdviceOut:
    """β0, α and ρ suggested from the discrepancies of steps 2…first_steps (contracts.beta_advice),
    with the reasoning; 409 when the run has too few pair records there."""
    return BetaAdviceOut.of(advice_for(conn, run, first_steps))


@router.get("/runs/{run_id}/evaluations", responses=NOT_FOUND)
def list_evaluations(run: Run, conn: ReadConn) -> list[EvalOut]:
    return [EvalOut.of(record) for record in evaluations.list_evaluations(conn, run.id)]
