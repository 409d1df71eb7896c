"""Per-pair records (one row per training step, micro-batch and pair) and pair texts.

z-score of a record: z = (M_i − M0) / max(σ, 1e-3), the pair's discrepancy in units of the
calibrator's running spread at that step. NaN floats are stored as NULL and come back as NaN.

Noise score of a pair over a run (the outlier inspector's "most suspicious first" order, issue 20):
the mean over the pair's records of max(0, −z) — how far below M0, in σ, the pair sat on average each
time it was seen. A mislabelled pair is one the policy learns to rank the other way round, so its M_i
falls below the batch's while the rest rise; a pair far ABOVE M0 is easy, not suspicious, and scores
0. The score needs β-DPO's M0 and σ (NULL for runs without the calibrator). docs/SCIENCE.md defines
it with the audit that checks it (ROC AUC against planted flips).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

from sqlalchemy import ColumnElement, RowMapping, Select, and_, case, func, literal, not_, select
from sqlalchemy.engine import Connection

from backend.storage.bulk import allocate_seq, insert_rows, nan_to_null, null_to_nan
from backend.storage.fencing import check_attempt
from backend.storage.tables import pair_records, pairs
from contracts.events import PairRecord, PairText
from contracts.metric_keys import PAIR_COLUMNS

SIGMA_FLOOR = 1e-3
PairOrder = Literal["discrepancy", "z", "step"]
SummaryOrder = Literal["filtered", "noise_score"]
_FLOATS = frozenset(f.name for f in fields(PairRecord) if f.type == "float")
_RECORD_COLUMNS = ("seq", "run_id", "attempt", *PAIR_COLUMNS)


@dataclass(frozen=True, slots=True)
class PairRow:
    """A stored pair record with its z-score and, when asked for, the pair's texts."""

    seq: int
    attempt: int
    record: PairRecord
    z: float
    prompt: str | None = None
    chosen: str | None = None
    rejected: str | None = None


@dataclass(frozen=True, slots=True)
class PairSummary:
    """One pair over a whole run: how often it was seen and filtered out (and of those, below M0), when,
    its mean M_i, its noise score (module docstring) and, when the run planted label noise, whether
    it is a planted pair."""

    pair_id: str
    times_seen: int
    times_filtered: int
    times_filtered_below: int
    first_step: int
    last_step: int
    mean_discrepancy: float
    noise_score: float
    planted: bool | None = None
    prompt: str | None = None
    chosen: str | None = None
    rejected: str | None = None


def insert_pair_records(conn: Connection, run_id: str, attempt: int, records: Sequence[PairRecord]) -> int:
    """Insert ``records`` in one batch, skipping (step, micro_batch, pair_id) already stored. Raises
    ``StaleAttempt`` (writing nothing) unless the run is at ``attempt``. Returns rows inserted."""
    check_attempt(conn, run_id, attempt)
    if not records:
        return 0
    first = allocate_seq(conn, pair_records.name, len(records))
    rows = [(seq, run_id, attempt, *_stored(r)) for seq, r in enumerate(records, start=first)]
    return insert_rows(conn, pair_records, _RECORD_COLUMNS, rows)


def _stored(record: PairRecord) -> tuple[object, ...]:
    """The record's values in PAIR_COLUMNS order, NaN → None."""
    return tuple(
        nan_to_null(getattr(record, name)) if name in _FLOATS else getattr(record, name)
        for name in PAIR_COLUMNS
    )


def insert_pair_texts(conn: Connection, run_id: str, texts: Sequence[PairText]) -> int:
    """Insert pair texts, skipping pair_ids the run already has. Returns rows inserted."""
    rows = [(run_id, t.pair_id, t.prompt, t.chosen, t.rejected, t.planted) for t in texts]
    return insert_rows(conn, pairs, ("run_id", "pair_id", "prompt", "chosen", "rejected", "planted"), rows)


def _z() -> ColumnElement[float]:
    """z = (M_i − M0) / max(σ, floor) as SQL; NULL (NaN) when any input is."""
    pr = pair_records.c
    sigma = case((pr.sigma < SIGMA_FLOOR, literal(SIGMA_FLOOR)), else_=pr.sigma)
    return ((pr.discrepancy - pr.m0) / sigma).label("z")


def _below_m0() -> ColumnElement[float]:
    """max(0, −z) of a record as SQL; NULL when z is (no calibrator), so a pair's mean ignores it."""
    z = _z()
    return case((z.is_(None), None), (z < 0, -z), else_=literal(0.0))


def _with_text(stmt: Select, run_id: str, pair_id: object) -> Select:
    return stmt.add_columns(pairs.c.prompt, pairs.c.chosen, pairs.c.rejected).outerjoin(
        pairs, and_(pairs.c.run_id == run_id, pairs.c.pair_id == pair_id)
    )


def query_pairs(
    conn: Connection,
    run_id: str,
    step: int | None = None,
    kept: bool | None = None,
    order: PairOrder = "discrepancy",
    descending: bool = True,
    limit: int = 100,
    offset: int = 0,
    with_text: bool = True,
) -> list[PairRow]:
    """Pair records of a run, optionally of one step and/or kept/filtered only, ordered by
    discrepancy M_i, z-score or step (NaN last either way; ties in insertion order)."""
    pr = pair_records.c
    z = _z()
    stmt = select(pair_records, z).where(pr.run_id == run_id)
    if step is not None:
        stmt = stmt.where(pr.step == step)
    if kept is not None:
        stmt = stmt.where(pr.kept == kept)
    key = {"discrepancy": pr.discrepancy, "z": z, "step": pr.step}[order]
    direction = key.desc() if descending else key.asc()
    stmt = stmt.order_by(direction.nulls_last(), pr.seq).limit(limit).offset(offset)
    if with_text:
        stmt = _with_text(stmt, run_id, pr.pair_id)
    return [_pair_row(row._mapping, with_text) for row in conn.execute(stmt)]


def _pair_row(m: RowMapping, with_text: bool) -> PairRow:
    values = {name: m[name] for name in PAIR_COLUMNS}
    values.update({name: null_to_nan(values[name]) for name in _FLOATS})
    values["kept"] = bool(values["kept"])
    texts = (m["prompt"], m["chosen"], m["rejected"]) if with_text else (None, None, None)
    return PairRow(m["seq"], m["attempt"], PairRecord(**values), null_to_nan(m["z"]), *texts)


def pair_summary(
    conn: Connection,
    run_id: str,
    kept: bool | None = False,
    limit: int = 100,
    offset: int = 0,
    with_text: bool = True,
    order: SummaryOrder = "filtered",
) -> list[PairSummary]:
    """Per pair_id over a run, for the outlier inspector. kept=False: pairs filtered out at least
    once; True: pairs never filtered out; None: all. order "filtered": most often filtered first, then
    by mean M_i; "noise_score": highest noise score first (NULL last). Planted flags come from the
    run's pair texts."""
    pr = pair_records.c
    filtered = func.sum(case((not_(pr.kept), 1), else_=0)).label("times_filtered")
    below = func.sum(case((and_(not_(pr.kept), pr.discrepancy < pr.m0), 1), else_=0)).label(
        "times_filtered_below"
    )
    mean = func.avg(pr.discrepancy).label("mean_discrepancy")
    score = func.avg(_below_m0()).label("noise_score")
    stmt = select(
        pr.pair_id,
        func.count().label("times_seen"),
        filtered,
        below,
        func.min(pr.step).label("first_step"),
        func.max(pr.step).label("last_step"),
        mean,
        score,
    ).where(pr.run_id == run_id)
    stmt = stmt.group_by(pr.pair_id)
    if kept is not None:
        stmt = stmt.having(filtered == 0 if kept else filtered > 0)
    grouped = stmt.subquery()
    g = grouped.c
    keys = [g.times_filtered.desc(), g.mean_discrepancy.desc().nulls_last()]
    if order == "noise_score":
        keys = [g.noise_score.desc().nulls_last(), g.mean_discrepancy.asc().nulls_last()]
    outer = select(
        grouped, pairs.c.planted, *((pairs.c.prompt, pairs.c.chosen, pairs.c.rejected) if with_text else ())
    )
    outer = outer.outerjoin(pairs, and_(pairs.c.run_id == run_id, pairs.c.pair_id == g.pair_id))
    outer = outer.order_by(*keys, g.pair_id).limit(limit).offset(offset)
    return [
        PairSummary(
            row.pair_id,
            row.times_seen,
            row.times_filtered,
            row.times_filtered_below,
            row.first_step,
            row.last_step,
            null_to_nan(row.mean_discrepancy),
            null_to_nan(row.noise_score),
            row.planted,
            *((row.prompt, row.chosen, row.rejected) if with_text else ()),
        )
        for row in conn.execute(outer)
    ]


def early_discrepancies(conn: Connection, run_id: str, first: int, last: int) -> list[float]:
    """M_i of every pair record of steps first…last (the β advice's input; NULL M skipped)."""
    pr = pair_records.c
    stmt = select(pr.discrepancy).where(
        pr.run_id == run_id, pr.step >= first, pr.step <= last, pr.discrepancy.is_not(None)
    )
    return [float(value) for value in conn.execute(stmt).scalars()]
