"""backend.storage.evaluations on SQLite: win rates and judgments, idempotent and optionally fenced."""

from __future__ import annotations

import math

import pytest
from sqlalchemy.exc import IntegrityError

from backend.storage import evaluations
from backend.storage.fencing import StaleAttempt
from contracts.events import EvalRecord, Judgment


def _judgment(step, item, verdict="win", judge="exact", temperature=0.7) -> Judgment:
    return Judgment(step, temperature, judge, "reference", item, f"q{item}", "a", "b", verdict, "A")


def test_evaluations_insert_once_and_list_in_order(engine, run_id):
    # 6 wins, 2 ties, 2 losses: win rate (6 + 2/2) / 10 = 0.7
    late = EvalRecord(20, 0.7, "exact", "reference", 6, 2, 2, 0.7, 0.4, 0.9)
    early = EvalRecord(10, 0.0, "exact", "reference", 1, 0, 0, 1.0, 0.2, 1.0)
    undefined = EvalRecord(10, 0.7, "exact", "reference", 0, 0, 0, math.nan, math.nan, math.nan)
    with engine.begin() as conn:
        assert evaluations.insert_evaluation(conn, run_id, late)
        assert not evaluations.insert_evaluation(conn, run_id, late)
        assert evaluations.insert_evaluation(conn, run_id, early, attempt=1)
        assert evaluations.insert_evaluation(conn, run_id, undefined)
        with pytest.raises(StaleAttempt):
            evaluations.insert_evaluation(
                conn, run_id, EvalRecord(30, 0.7, "x", "y", 0, 0, 0, 0, 0, 0), attempt=2
            )
        stored = evaluations.list_evaluations(conn, run_id)
    assert stored[0] == early and stored[2] == late and len(stored) == 3
    assert stored[1].step == 10 and stored[1].temperature == 0.7 and math.isnan(stored[1].win_rate)


def test_judgments_insert_once_filter_and_check_verdict(engine, run_id):
    items = [
        _judgment(10, 1, "loss"),
        _judgment(10, 0),
        _judgment(20, 0, "tie"),
        _judgment(10, 0, judge="llm"),
    ]
    with engine.begin() as conn:
        assert evaluations.insert_judgments(conn, run_id, items, attempt=1) == 4
        assert evaluations.insert_judgments(conn, run_id, items) == 0
        assert evaluations.list_judgments(conn, run_id) == [items[1], items[0], items[3], items[2]]
        assert evaluations.list_judgments(conn, run_id, step=10, judge="exact") == [items[1], items[0]]
        assert evaluations.list_judgments(conn, run_id, temperature=0.7, limit=1, offset=1) == [items[0]]
        with pytest.raises(StaleAttempt):
            evaluations.insert_judgments(conn, run_id, [_judgment(30, 0)], attempt=3)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        evaluations.insert_judgments(conn, run_id, [_judgment(30, 0, verdict="draw")])  # type: ignore[arg-type]
