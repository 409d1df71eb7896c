"""Per-pair records (one row per training step, micro-batch and pair) and pair texts.

z-score of a record: z = (M_i − M0) / max(σ, 1e-3), the pair's discrepancy in units of the
calibrator's running spread at that step. NaN floats are stored as NULL and come back as NaN.

Noise score of a pair over a run (the outlier inspector's "most suspicious first" order, issue 20):
the mean over the pair's records of max(0, −z) — how far below M0, in σ, the pair sat on average each
time it was seen. A mislabelled pair is one the policy learns to rank the other way round, so its M_i
falls below the batch's while the rest rise; a pair far ABOVE M0 is easy, not suspicious, and scores
0. The score needs β-DPO's M0 and σ (NULL for runs without the calibrator). docs/SCIENCE.md §4 defines
it with the audit that checks it (ROC AUC against planted flips).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

from sqlalchemy import ColumnElement, RowMapping, Select, and_, case, func, literal, not_, or_, select
from sqlalchemy.engine import Connection

from backend.storage import lineage
from backend.storage.bulk import allocate_seq, insert_rows, nan_to_null, null_to_nan
from backend.storage.fencing import check_attempt
from backend.storage.lineage import Segment
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
    """One pair over a whole run: how often it was seen and filtered out, when, its mean M_i and the
    mean z of its filtered occurrences (each against the M0 and σ of the step it was filtered in);
    its noise score (module docstring), how often it was filtered while below M0, and, when the run
    planted label noise, whether it is a planted pair."""

    pair_id: str
    times_seen: int
    times_filtered: int
    first_step: int
    last_step: int
    mean_discrepancy: float
    mean_filtered_z: float = float("nan")
    noise_score: float = float("nan")
    times_filtered_below: int = 0
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


def z_score() -> ColumnElement[float]:
    """z = (M_i − M0) / max(σ, floor) as SQL; NULL (NaN) when any input is."""
    pr = pair_records.c
    sigma = case((pr.sigma < SIGMA_FLOOR, literal(SIGMA_FLOOR)), else_=pr.sigma)
    return ((pr.discrepancy - pr.m0) / sigma).label("z")


def _below_m0() -> ColumnElement[float]:
    """max(0, −z) of a record as SQL; NULL when z is (no calibrator), so a pair's mean ignores it."""
    z = z_score()
    return case((z.is_(None), None), (z < 0, -z), else_=literal(0.0))


def add_texts(stmt: Select, run_id: object, pair_id: object) -> Select:
    """``stmt`` with the pair's prompt, chosen and rejected texts as stored by run ``run_id``."""
    return stmt.add_columns(pairs.c.prompt, pairs.c.chosen, pairs.c.rejected).outerjoin(
        pairs, and_(pairs.c.run_id == run_id, pairs.c.pair_id == pair_id)
    )


def _of(run_id: str, chain: Sequence[Segment] | None) -> ColumnElement[bool]:
    """The records of ``run_id`` alone, or of its lineage ``chain`` when given."""
    pr = pair_records.c
    return lineage.where(list(chain), pr.step, pr.run_id) if chain else pr.run_id == run_id


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
    chain: Sequence[Segment] | None = None,
) -> list[PairRow]:
    """Pair records of a run (of its lineage ``chain`` when given), optionally of one step and/or
    kept/filtered only, ordered by discrepancy M_i, z-score or step (NaN last either way; ties in
    insertion order)."""
    pr = pair_records.c
    z = z_score()
    stmt = select(pair_records, z).where(_of(run_id, chain))
    if step is not None:
        stmt = stmt.where(pr.step == step)
    if kept is not None:
        stmt = stmt.where(pr.kept == kept)
    key = {"discrepancy": pr.discrepancy, "z": z, "step": pr.step}[order]
    direction = key.desc() if descending else key.asc()
    stmt = stmt.order_by(direction.nulls_last(), pr.seq).limit(limit).offset(offset)
    if with_text:
        stmt = add_texts(stmt, pr.run_id, pr.pair_id)
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
    chain: Sequence[Segment] | None = None,
    order: SummaryOrder = "filtered",
) -> list[PairSummary]:
    """Per pair_id over a run (over its lineage ``chain`` when given), for the outlier inspector.
    kept=False: pairs filtered out at least once; True: pairs never filtered out; None: all. order
    "filtered": most often filtered first, then by mean M_i; "noise_score": highest noise score first
    (NULL last). Planted flags come from the run's pair texts."""
    pr = pair_records.c
    filtered = func.sum(case((not_(pr.kept), 1), else_=0)).label("times_filtered")
    stmt = select(
        pr.pair_id,
        func.count().label("times_seen"),
        filtered,
        func.min(pr.step).label("first_step"),
        func.max(pr.step).label("last_step"),
        func.avg(pr.discrepancy).label("mean_discrepancy"),
        func.avg(case((not_(pr.kept), z_score()))).label("mean_filtered_z"),
        func.avg(_below_m0()).label("noise_score"),
        func.sum(case((and_(not_(pr.kept), pr.discrepancy < pr.m0), 1), else_=0)).label(
            "times_filtered_below"
        ),
        func.max(pr.run_id).label("text_run"),
    ).where(_of(run_id, chain))
    stmt = stmt.group_by(pr.pair_id)
    if kept is not None:
        stmt = stmt.having(filtered == 0 if kept else filtered > 0)
    grouped = stmt.subquery()
    g = grouped.c
    keys = [g.times_filtered.desc(), g.mean_discrepancy.desc().nulls_last()]
    if order == "noise_score":
        keys = [g.noise_score.desc().nulls_last(), g.mean_discrepancy.asc().nulls_last()]
    texts = (pairs.c.prompt, pairs.c.chosen, pairs.c.rejected) if with_text else ()
    outer = select(*g, pairs.c.planted, *texts).select_from(
        grouped.outerjoin(pairs, and_(pairs.c.run_id == g.text_run, pairs.c.pair_id == g.pair_id))
    )
    outer = outer.order_by(*keys, g.pair_id).limit(limit).offset(offset)
    return [
        PairSummary(
            row.pair_id,
            row.times_seen,
            row.times_filtered,
            row.first_step,
            row.last_step,
            null_to_nan(row.mean_discrepancy),
            null_to_nan(row.mean_filtered_z),
            null_to_nan(row.noise_score),
            row.times_filtered_below,
            row.planted,
            *((row.prompt, row.chosen, row.rejected) if with_text else ()),
        )
        for row in conn.execute(outer)
    ]


def micro_batch_weights(
    conn: Connection,
    run_id: str,
    groups: set[tuple[int, int | None]],
    chain: Sequence[Segment] | None = None,
) -> dict[tuple[int, int | None], list[tuple[int, float, bool]]]:
    """(step, micro_batch) → [(seq, filter_weight, kept)] of every record of those micro-batches of
    the run (of its lineage ``chain`` when given), in insertion order; micro_batch None groups the
    whole step (one β-DPO calibration per step: ``beta_dpo.scope: batch``). NaN weights come back NaN."""
    if not groups:
        return {}
    pr = pair_records.c
    whole = {step for step, micro_batch in groups if micro_batch is None}
    wanted = or_(
        *(
            pr.step == step if micro_batch is None else and_(pr.step == step, pr.micro_batch == micro_batch)
            for step, micro_batch in groups
        )
    )
    stmt = select(pr.step, pr.micro_batch, pr.seq, pr.filter_weight, pr.kept).where(
        _of(run_id, chain), wanted
    )
    found: dict[tuple[int, int | None], list[tuple[int, float, bool]]] = {}
    for row in conn.execute(stmt.order_by(pr.seq)):
        key = (row.step, None if row.step in whole else row.micro_batch)
        found.setdefault(key, []).append((row.seq, null_to_nan(row.filter_weight), bool(row.kept)))
    return found


def early_discrepancies(conn: Connection, run_id: str, first: int, last: int) -> list[float]:
    """M_i of every pair record of steps first…last (the β advice's input; NULL M skipped)."""
    pr = pair_records.c
    stmt = select(pr.discrepancy).where(
        pr.run_id == run_id, pr.step >= first, pr.step <= last, pr.discrepancy.is_not(None)
    )
    return [float(value) for value in conn.execute(stmt).scalars()]
