"""Win rates per (run, step, temperature, judge, opponent) and the per-prompt judgments behind them.

Inserts are idempotent (a stored key is skipped); with ``attempt`` they are also fenced like metric
points. NaN floats are stored as NULL and come back as NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection

from backend.storage.bulk import insert_rows, nan_to_null, null_to_nan
from backend.storage.fencing import check_attempt
from backend.storage.tables import evaluations, judgments
from contracts.events import EvalRecord, Judgment

_EVAL_COLUMNS = tuple(evaluations.c.keys())  # run_id, then EvalRecord's fields in order
_JUDGMENT_COLUMNS = tuple(judgments.c.keys())  # run_id, then Judgment's fields in order
_RATES = frozenset({"win_rate", "ci_low", "ci_high"})


def insert_evaluation(conn: Connection, run_id: str, record: EvalRecord, attempt: int | None = None) -> bool:
    """Store one win rate; False when that (step, temperature, judge, opponent) was already stored."""
    if attempt is not None:
        check_attempt(conn, run_id, attempt)
    values = ((name, getattr(record, name)) for name in _EVAL_COLUMNS[1:])
    row = (run_id, *(nan_to_null(v) if name in _RATES else v for name, v in values))
    return insert_rows(conn, evaluations, _EVAL_COLUMNS, [row]) == 1


def insert_judgments(
    conn: Connection, run_id: str, items: Sequence[Judgment], attempt: int | None = None
) -> int:
    """Store judgments, skipping any already stored; returns rows inserted."""
    if attempt is not None:
        check_attempt(conn, run_id, attempt)
    rows = [(run_id, *(getattr(j, name) for name in _JUDGMENT_COLUMNS[1:])) for j in items]
    return insert_rows(conn, judgments, _JUDGMENT_COLUMNS, rows)


def list_evaluations(conn: Connection, run_id: str) -> list[EvalRecord]:
    """A run's win rates ordered by step, temperature, judge, opponent."""
    e = evaluations.c
    stmt = select(evaluations).where(e.run_id == run_id).order_by(e.step, e.temperature, e.judge, e.opponent)
    return [
        EvalRecord(*(null_to_nan(row[n]) if n in _RATES else row[n] for n in _EVAL_COLUMNS[1:]))
        for row in conn.execute(stmt).mappings()
    ]


def list_judgments(
    conn: Connection,
    run_id: str,
    step: int | None = None,
    temperature: float | None = None,
    judge: str | None = None,
    opponent: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Judgment]:
    """A run's judgments, optionally of one step/temperature/judge/opponent, in key order."""
    j = judgments.c
    stmt = select(judgments).where(j.run_id == run_id)
    for column, value in (
        (j.step, step),
        (j.temperature, temperature),
        (j.judge, judge),
        (j.opponent, opponent),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    stmt = stmt.order_by(j.step, j.temperature, j.judge, j.opponent, j.item).limit(limit).offset(offset)
    return [Judgment(*(row[name] for name in _JUDGMENT_COLUMNS[1:])) for row in conn.execute(stmt).mappings()]
