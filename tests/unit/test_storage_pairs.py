"""backend.storage.pairs on SQLite: fenced idempotent records, texts, ordering, the outlier summary."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import update

from backend.storage import pairs
from backend.storage.fencing import StaleAttempt
from backend.storage.tables import runs as runs_table
from contracts.events import PairRecord, PairText


def _rec(step, pair_id, discrepancy, kept=True, m0=0.0, sigma=1.0, micro_batch=0) -> PairRecord:
    return PairRecord(
        step, micro_batch, pair_id, -10.0, -12.0, -10.5, -11.0, 7, 9, discrepancy, 0.5, kept, 0.1, m0, sigma
    )


# (step, pair, M_i, kept, M0, σ) → z = (M_i − M0) / max(σ, 1e-3)
RECORDS = [
    _rec(0, "a", 1.0, True, 0.0, 2.0),  # z = 0.5
    _rec(0, "b", 3.0, False, 0.0, 2.0),  # z = 1.5
    _rec(1, "a", 2.0, True, 1.0, 0.5),  # z = 2.0
    _rec(1, "c", -1.0, False, 1.0, 0.5),  # z = −4.0
    _rec(2, "b", 0.5, False, 0.0, 0.0),  # z = 0.5 / 1e-3 = 500
]


def _insert(engine, run_id, records=RECORDS, attempt=1) -> int:
    with engine.begin() as conn:
        return pairs.insert_pair_records(conn, run_id, attempt, records)


def _query(engine, run_id, **kwargs):
    with engine.connect() as conn:
        return pairs.query_pairs(conn, run_id, **kwargs)


def test_insert_is_idempotent_and_round_trips(engine, run_id):
    assert _insert(engine, run_id) == 5
    assert _insert(engine, run_id) == 0
    assert _insert(engine, run_id, [_rec(0, "a", 1.0, micro_batch=1)]) == 1  # another micro-batch
    rows = sorted(_query(engine, run_id, with_text=False), key=lambda r: r.seq)
    assert [r.record for r in rows] == [*RECORDS, _rec(0, "a", 1.0, micro_batch=1)]
    assert rows[0].attempt == 1 and rows[0].prompt is None


def test_stale_attempt_writes_nothing(engine, run_id):
    with engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(attempt=2))
    with pytest.raises(StaleAttempt):
        _insert(engine, run_id)
    assert _query(engine, run_id) == []


def test_nan_fields_round_trip(engine, run_id):
    _insert(engine, run_id, [_rec(0, "n", math.nan, sigma=math.nan)])
    (row,) = _query(engine, run_id)
    assert math.isnan(row.record.discrepancy) and math.isnan(row.record.sigma) and math.isnan(row.z)
    assert row.record.policy_chosen_logp == -10.0


def test_order_by_discrepancy_z_and_step(engine, run_id):
    _insert(engine, run_id)

    def order(**kwargs):
        return [(r.record.step, r.record.pair_id) for r in _query(engine, run_id, **kwargs)]

    assert order() == [(0, "b"), (1, "a"), (0, "a"), (2, "b"), (1, "c")]  # M: 3, 2, 1, 0.5, −1
    assert order(descending=False) == [(1, "c"), (2, "b"), (0, "a"), (1, "a"), (0, "b")]
    assert order(order="z") == [(2, "b"), (1, "a"), (0, "b"), (0, "a"), (1, "c")]  # 500, 2, 1.5, .5, −4
    assert order(order="step") == [(2, "b"), (1, "a"), (1, "c"), (0, "a"), (0, "b")]  # ties: inserted
    assert [r.z for r in _query(engine, run_id, order="z")] == pytest.approx([500.0, 2.0, 1.5, 0.5, -4.0])


def test_filters_and_pages(engine, run_id):
    _insert(engine, run_id)
    assert [r.record.pair_id for r in _query(engine, run_id, step=1)] == ["a", "c"]
    assert [r.record.pair_id for r in _query(engine, run_id, kept=False)] == ["b", "b", "c"]
    assert [r.record.pair_id for r in _query(engine, run_id, kept=True, step=0)] == ["a"]
    pages = [_query(engine, run_id, limit=2, offset=offset) for offset in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [r.seq for page in pages for r in page] == [r.seq for r in _query(engine, run_id)]


def test_texts_are_joined_and_inserted_once(engine, run_id):
    _insert(engine, run_id)
    with engine.begin() as conn:
        assert pairs.insert_pair_texts(conn, run_id, [PairText("a", "2+2=", "4", "5")]) == 1
        assert pairs.insert_pair_texts(conn, run_id, [PairText("a", "other", "x", "y")]) == 0
    rows = {r.record.pair_id: r for r in _query(engine, run_id, step=0)}
    assert (rows["a"].prompt, rows["a"].chosen, rows["a"].rejected) == ("2+2=", "4", "5")
    assert rows["b"].prompt is None  # no text stored for b


def test_pair_summary(engine, run_id):
    _insert(engine, run_id)
    with engine.begin() as conn:
        pairs.insert_pair_texts(conn, run_id, [PairText("b", "p", "c", "r")])
        filtered = pairs.pair_summary(conn, run_id)
        kept_only = pairs.pair_summary(conn, run_id, kept=True, with_text=False)
        everything = pairs.pair_summary(conn, run_id, kept=None, with_text=False)
    # b: seen at steps 0 and 2, filtered both times, mean M = (3 + 0.5) / 2 = 1.75
    # c: seen at step 1, filtered once, mean −1; a: kept at steps 0 and 1, mean (1 + 2) / 2 = 1.5
    assert [(s.pair_id, s.times_seen, s.times_filtered, s.first_step, s.last_step) for s in filtered] == [
        ("b", 2, 2, 0, 2),
        ("c", 1, 1, 1, 1),
    ]
    assert [s.mean_discrepancy for s in filtered] == pytest.approx([1.75, -1.0])
    assert (filtered[0].prompt, filtered[1].prompt) == ("p", None)
    assert [(s.pair_id, s.mean_discrepancy) for s in kept_only] == [("a", 1.5)]
    assert [s.pair_id for s in everything] == ["b", "c", "a"]
    assert kept_only[0].prompt is None


def test_noise_score_order_and_planted_flags(engine, run_id):
    """noise score = mean over a pair's records of max(0, −z); planted comes from the pair texts."""
    extra = [_rec(3, "d", -3.0, False, 1.0, 2.0), _rec(4, "d", 2.0, True, 1.0, 2.0)]  # z = −2, +0.5
    _insert(engine, run_id, [*RECORDS, *extra, _rec(5, "e", -5.0, False, math.nan, math.nan)])
    texts = [
        PairText("c", "p", "x", "y", True),
        PairText("d", "p", "x", "y", False),
        PairText("a", "p", "x", "y"),
    ]
    with engine.begin() as conn:
        pairs.insert_pair_texts(conn, run_id, texts)
        ranked = pairs.pair_summary(conn, run_id, kept=None, order="noise_score")
    # c: z −4 → 4; d: (2 + 0) / 2 = 1; a, b only above M0 → 0 (ties: lower mean M first, a 1.5 < b 1.75);
    # e has no M0/σ → NULL, last
    assert [s.pair_id for s in ranked] == ["c", "d", "a", "b", "e"]
    scores = {s.pair_id: s.noise_score for s in ranked}
    assert scores["c"] == pytest.approx(4.0) and scores["d"] == pytest.approx(1.0)
    assert scores["a"] == scores["b"] == 0.0 and math.isnan(scores["e"])
    flags = {s.pair_id: s.planted for s in ranked}
    assert flags == {"c": True, "d": False, "a": None, "b": None, "e": None}
    below = {s.pair_id: s.times_filtered_below for s in ranked}
    assert below == {"c": 1, "d": 1, "a": 0, "b": 0, "e": 0}
