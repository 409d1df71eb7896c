"""backend.storage.metrics on SQLite: idempotent fenced inserts, NaN/inf, downsampling, replay."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import func, select, update

from backend.storage import metrics, runs
from backend.storage.db import init_db
from backend.storage.fencing import StaleAttempt
from backend.storage.tables import metric_points, metric_series
from backend.storage.tables import runs as runs_table
from contracts.events import MetricPoint

LOSS = "train/loss"


@pytest.fixture
def engine(tmp_path):
    engine = init_db(f"sqlite:///{tmp_path / 'alignscope.db'}")
    yield engine
    engine.dispose()


def _run(engine) -> str:
    with engine.begin() as conn:
        run_id = runs.create_run(conn, "{}", "run", None, None)
        runs.claim_run(conn, run_id, 1)
    return run_id


def _put(engine, run_id, values, key=LOSS, attempt=1) -> int:
    """Insert values[i] at step i (None skips a step)."""
    points = [MetricPoint(key, step, v, 100.0 + step) for step, v in enumerate(values) if v is not None]
    with engine.begin() as conn:
        return metrics.insert_points(conn, run_id, attempt, points)


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(metric_points)).scalar_one()


def _series(engine, run_id, **kwargs):
    with engine.connect() as conn:
        return metrics.series(conn, run_id, LOSS, **kwargs)


def test_retried_batch_adds_nothing(engine):
    run_id = _run(engine)
    assert _put(engine, run_id, [0.5, 0.4, 0.3]) == 3
    assert _put(engine, run_id, [0.5, 0.4, 0.3]) == 0
    assert _put(engine, run_id, [9.0, 9.0, 9.0, 0.2]) == 1  # only step 3 is new; stored values win
    assert _series(engine, run_id) == [(0, 0.5), (1, 0.4), (2, 0.3), (3, 0.2)]
    with engine.begin() as conn:
        assert metrics.insert_points(conn, run_id, 1, []) == 0


def _points_and_their_series(engine) -> list[tuple[str, str, int]]:
    """(run_id, key) of the series each point's id names (None: no such series) and its step, by seq."""
    mp, ms = metric_points.c, metric_series.c
    joined = metric_points.outerjoin(metric_series, ms.id == mp.series_id)
    stmt = select(ms.run_id, ms.key, mp.step).select_from(joined).order_by(mp.seq)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(stmt)]


def test_one_series_per_run_and_key(engine):
    a, b = _run(engine), _run(engine)
    _put(engine, a, [0.5, 0.4])
    _put(engine, a, [1e-3], key="train/lr")
    _put(engine, b, [0.9])
    _put(engine, a, [0.5, 0.4, 0.3])  # steps 0, 1 stored: only step 2 is new
    with engine.connect() as conn:
        ids_a, ids_b = metrics.series_ids(conn, a), metrics.series_ids(conn, b)
        assert metrics.series_ids(conn, a, [LOSS, "nope"]) == {LOSS: ids_a[LOSS]}
        assert metrics.series(conn, a, "nope") == [] and metrics.series(conn, "0" * 32, LOSS) == []
        assert conn.execute(select(func.count()).select_from(metric_series)).scalar_one() == 3
    assert sorted(ids_a) == [LOSS, "train/lr"] and list(ids_b) == [LOSS]
    assert len({*ids_a.values(), *ids_b.values()}) == 3
    points = _points_and_their_series(engine)
    lr = "train/lr"
    assert points == [(a, LOSS, 0), (a, LOSS, 1), (a, lr, 0), (b, LOSS, 0), (a, LOSS, 2)]


def test_a_rolled_back_batch_leaves_no_series_and_its_retry_stores_it_once(engine):
    run_id = _run(engine)
    points = [MetricPoint(key, step, 1.0, 1.0) for key in (LOSS, "train/lr") for step in range(3)]
    with pytest.raises(RuntimeError), engine.begin() as conn:
        assert metrics.insert_points(conn, run_id, 1, points) == 6
        raise RuntimeError("the commit never happens")
    assert _points_and_their_series(engine) == []
    with engine.connect() as conn:
        assert metrics.series_ids(conn, run_id) == {}
    for expected in (6, 0):  # the retry, then a retry of the retry
        with engine.begin() as conn:
            assert metrics.insert_points(conn, run_id, 1, points) == expected
    stored = _points_and_their_series(engine)
    assert sorted(stored) == sorted((run_id, p.key, p.step) for p in points)


def test_stale_attempt_writes_nothing(engine):
    run_id = _run(engine)
    with engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(attempt=2))
    with pytest.raises(StaleAttempt):
        _put(engine, run_id, [0.5, 0.4])
    with pytest.raises(StaleAttempt):
        _put(engine, "0" * 32, [0.5])
    assert _count(engine) == 0
    assert _put(engine, run_id, [0.5, 0.4], attempt=2) == 2


def test_nan_and_inf_round_trip(engine):
    run_id = _run(engine)
    _put(engine, run_id, [math.nan, math.inf, -math.inf, 1.5])
    got = _series(engine, run_id)
    assert [s for s, _ in got] == [0, 1, 2, 3]
    assert math.isnan(got[0][1]) and got[1][1] == math.inf and got[2][1] == -math.inf and got[3][1] == 1.5
    with engine.connect() as conn:
        replay = metrics.points_after(conn, run_id, 0)
    assert math.isnan(replay[0].value) and [p.value for p in replay[1:]] == [math.inf, -math.inf, 1.5]


def test_downsampling_hand_computed(engine):
    run_id = _run(engine)
    _put(engine, run_id, [5, 1, 9, 3, 7, 2, 8, 4, 6, 0, 10, 11])
    # 12 points > 6: no NaN → 2 points per bucket, (6 − 2) // 2 = 2 buckets of steps 0–5 and 6–11.
    # bucket 0: min 1 @1, max 9 @2; bucket 1: min 0 @9, max 11 @11; plus first (0, 5), last (11, 11).
    assert _series(engine, run_id, max_points=6) == [(0, 5), (1, 1), (2, 9), (9, 0), (11, 11)]
    assert len(_series(engine, run_id, max_points=12)) == 12  # short enough: everything


def test_downsampling_keeps_the_first_nan_of_a_bucket(engine):
    run_id = _run(engine)
    _put(engine, run_id, [5, 1, 9, 3, math.nan, math.nan, 8, 4, 6, 0, 10, 11])
    # a NaN present → 3 per bucket, (8 − 2) // 3 = 2 buckets; bucket 0 adds its first NaN (step 4).
    got = _series(engine, run_id, max_points=8)
    assert [s for s, _ in got] == [0, 1, 2, 4, 9, 11]
    assert math.isnan(got[3][1]) and [v for _, v in got if not math.isnan(v)] == [5, 1, 9, 0, 11]


def test_downsampling_keeps_spikes_first_last_and_bound(engine):
    run_id = _run(engine)
    values = [float(step % 10) for step in range(10_000)]
    values[4_321], values[7_777], values[9_000] = 1e6, -1e6, math.nan
    _put(engine, run_id, values)
    got = _series(engine, run_id, max_points=100)
    steps = [s for s, _ in got]
    assert len(got) <= 100 and steps == sorted(set(steps))
    assert steps[0] == 0 and steps[-1] == 9_999
    assert (4_321, 1e6) in got and (7_777, -1e6) in got
    assert any(s == 9_000 and math.isnan(v) for s, v in got)
    with pytest.raises(ValueError):
        _series(engine, run_id, max_points=4)


def test_series_step_window(engine):
    run_id = _run(engine)
    _put(engine, run_id, [float(s) for s in range(12)])
    assert _series(engine, run_id, since_step=5, until_step=8) == [(6, 6.0), (7, 7.0), (8, 8.0)]
    assert _series(engine, run_id, since_step=11) == []


def test_keys(engine):
    run_id, other = _run(engine), _run(engine)
    _put(engine, run_id, [1.0], key="train/lr")
    _put(engine, run_id, [1.0, 2.0], key=LOSS)
    _put(engine, other, [1.0], key="eval/loss")
    with engine.connect() as conn:
        assert metrics.keys(conn, run_id) == ["train/loss", "train/lr"]


def test_points_after_is_a_gapless_cursor_across_runs(engine):
    a, b = _run(engine), _run(engine)
    _put(engine, a, [1.0, 2.0])  # seq 1, 2
    _put(engine, b, [3.0])  # seq 3
    _put(engine, a, [1.0, 2.0, 4.0])  # steps 0, 1 exist: only step 2 stored, as seq 4 + 2 = 6
    with engine.connect() as conn:
        everything = metrics.points_after(conn, None, 0)
        assert [(p.seq, p.run_id, p.step, p.value) for p in everything] == [
            (1, a, 0, 1.0),
            (2, a, 1, 2.0),
            (3, b, 0, 3.0),
            (6, a, 2, 4.0),
        ]
        assert [p.seq for p in metrics.points_after(conn, a, 1)] == [2, 6]
        assert [p.seq for p in metrics.points_after(conn, a, 0, limit=1)] == [1]
        assert metrics.points_after(conn, None, 6) == []
        assert metrics.last_seq(conn) == 6
        assert everything[0].wall_time == 100.0


def check_paging_equals_a_seq_walk(engine) -> None:
    """Every page size walks each run's stream and the all-runs stream to the same points, in the
    same order, as one ``ORDER BY seq`` read of the table; across runs written in turns, with gaps
    (a batch's duplicates skipped) and windows that hold none of the run's points."""
    a, b = _run(engine), _run(engine)
    for turn in range(6):
        _put(engine, a, [float(turn)] * (10 * turn + 3))  # re-sends the earlier steps: gaps in seq
        _put(engine, b, [1.0] * 40 if turn == 2 else [])  # run b: one block of 40 in the middle
    with engine.connect() as conn:
        mp, ms = metric_points.c, metric_series.c
        owners = select(mp.seq, ms.run_id).join_from(metric_points, metric_series, ms.id == mp.series_id)
        walk = conn.execute(owners.order_by(mp.seq)).all()
        for run_id in (a, b, None):
            expected = [seq for seq, owner in walk if run_id in (None, owner)]
            for limit in (1, 3, 7, 1000):
                cursor, seen = 0, []
                while page := metrics.points_after(conn, run_id, cursor, limit=limit):
                    assert len(page) <= limit and (len(page) == limit or page[-1].seq == expected[-1])
                    seen.extend(p.seq for p in page)
                    cursor = page[-1].seq
                assert seen == expected, (run_id, limit)
        assert metrics.last_seq(conn) >= walk[-1][0]


def test_points_after_pages_through_gaps_and_other_runs(engine):
    check_paging_equals_a_seq_walk(engine)


def test_seq_is_never_reused_after_a_delete(engine):
    a, b = _run(engine), _run(engine)
    _put(engine, a, [1.0, 2.0, 3.0])  # seq 1..3
    with engine.begin() as conn:
        runs.delete_run(conn, a)
    _put(engine, b, [1.0])
    with engine.connect() as conn:
        assert [p.seq for p in metrics.points_after(conn, None, 0)] == [4]


def test_points_have_no_foreign_key_and_go_with_their_run(engine):
    a, b = _run(engine), _run(engine)
    _put(engine, a, [1.0, 2.0])
    _put(engine, b, [3.0])
    with engine.begin() as conn:
        # migration 0004: no per-row check against runs; the fenced insert is the guard.
        assert conn.exec_driver_sql("PRAGMA foreign_key_list(metric_points)").all() == []
        assert runs.delete_run(conn, a)
    with engine.connect() as conn:
        assert [(p.run_id, p.value) for p in metrics.points_after(conn, None, 0)] == [(b, 3.0)]


def test_summarizing_the_seq_index_is_postgresql_only(engine):
    _put(engine, _run(engine), [1.0, 2.0])
    with engine.begin() as conn:
        assert metrics.summarize_new_points(conn) is None  # SQLite: seq is the rowid, nothing to do
