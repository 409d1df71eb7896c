"""backend.storage.rollups on SQLite: rollups equal a brute force over the stored points (retries,
partly duplicate and back-filled batches, NaN, ties), the migration's backfill builds the same rows,
and series() read from them keeps spikes, NaNs, first and last, within max_points."""

from __future__ import annotations

import math
import random

import pytest
from alembic import command
from sqlalchemy import func, select

from backend.storage import db, metrics, rollups, runs
from backend.storage.tables import metric_points, metric_rollups, metric_series
from contracts.events import MetricPoint

LOSS = "train/loss"
Row = tuple[int, int | None, int | None, float | None, int | None, float | None, int | None]


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'alignscope.db'}"


@pytest.fixture
def engine(url):
    engine = db.init_db(url)
    yield engine
    engine.dispose()


def new_run(engine) -> str:
    with engine.begin() as conn:
        run_id = runs.create_run(conn, "{}", "run", None, None)
        runs.claim_run(conn, run_id, 1)
    return run_id


def put(engine, run_id: str, points: list[MetricPoint]) -> int:
    with engine.begin() as conn:
        return metrics.insert_points(conn, run_id, 1, points)


def random_batches(seed: int, keys: int = 3, steps: int = 6_000) -> list[list[MetricPoint]]:
    """Batches over steps −300..steps−1 of ``keys`` keys: values from a small set (many ties) with
    NaN and ±inf, in overlapping chunks (partly duplicate batches) sent in shuffled order
    (back-fill), with exact retries, and in-batch duplicates of other values (the first one wins)."""
    rng = random.Random(seed)
    choices = [0.0, 1.0, 2.0, -1.0, math.inf, -math.inf, math.nan]
    weights = [30, 30, 30, 5, 1, 1, 3]
    points = [
        MetricPoint(f"k{k}", step, rng.choices(choices, weights)[0], 1.0)
        for step in range(-300, steps)
        for k in range(keys)
    ]
    chunks = [points[i : i + rng.randint(1_000, 2_000)] for i in range(0, len(points), 1_000)]
    rng.shuffle(chunks)
    batches = []
    for chunk in chunks:
        batches.append(chunk + [MetricPoint(p.key, p.step, 9.0, 2.0) for p in chunk[:: rng.randint(5, 50)]])
        if rng.random() < 0.3:
            batches.append(list(chunk))  # a retry
    return batches


def brute_force(conn, run_id: str) -> dict[tuple[int, str, int], Row]:
    """(level, key, bucket) → (count, min_value, min_step, max_value, max_step, nan_step) from the
    stored points: min/max over non-NaN values, the smaller step on a tie."""
    mp, ms = metric_points.c, metric_series.c
    points = select(ms.key, mp.step, mp.value).join_from(metric_points, metric_series, ms.id == mp.series_id)
    stored = conn.execute(points.where(ms.run_id == run_id)).all()
    expected = {}
    for level in range(rollups.TOP_LEVEL + 1):
        groups: dict[tuple[str, int], list[tuple[int, float | None]]] = {}
        for key, step, value in stored:
            groups.setdefault((key, step >> (6 + level)), []).append((step, value))
        for (key, bucket), members in groups.items():
            real = [(v, s) for s, v in members if v is not None]
            low = min(real, default=(None, None))
            high = max(real, key=lambda vs: (vs[0], -vs[1]), default=(None, None))
            nan = min((s for s, v in members if v is None), default=None)
            expected[(level, key, bucket)] = (len(members), low[0], low[1], high[0], high[1], nan)
    return expected


def stored_rollups(conn, run_id: str) -> dict[tuple[int, str, int], Row]:
    r = metric_rollups.c
    rows = conn.execute(select(metric_rollups).where(r.run_id == run_id)).all()
    return {(row.level, row.key, row.bucket): tuple(row[4:]) for row in rows}


def test_rollups_equal_a_brute_force_over_retries_duplicates_and_back_fill(engine):
    run_id, other = new_run(engine), new_run(engine)
    inserted = sum(put(engine, run_id, batch) for batch in random_batches(seed=1))
    put(engine, other, [MetricPoint("k0", 5, 1.0, 1.0)])
    with engine.connect() as conn:
        assert inserted == 3 * 6_300  # every (key, step) once, whatever the retries
        expected = brute_force(conn, run_id)
        assert stored_rollups(conn, run_id) == expected
        assert sum(row[0] for (level, _, _), row in expected.items() if level == 0) == inserted
        assert metrics.keys(conn, run_id) == ["k0", "k1", "k2"]


def test_migration_backfill_builds_the_same_rollups(engine, url):
    run_id = new_run(engine)
    for batch in random_batches(seed=2, keys=2, steps=3_000):
        put(engine, run_id, batch)
    with engine.connect() as conn:
        expected = brute_force(conn, run_id)
    config = db.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
        command.upgrade(config, "head")  # 0002 rebuilds the rollups from metric_points
    with engine.connect() as conn:
        assert stored_rollups(conn, run_id) == expected


def test_only_new_points_count_and_delete_removes_rollups(engine):
    run_id = new_run(engine)
    assert put(engine, run_id, [MetricPoint(LOSS, s, float(s), 1.0) for s in range(10)]) == 10
    # steps 8, 9 exist (their values 8, 9 stay), 10 and 11 are new; step 10 is sent twice.
    batch = [MetricPoint(LOSS, s, -1.0, 1.0) for s in (8, 9, 10, 11)] + [MetricPoint(LOSS, 10, 50.0, 1.0)]
    assert put(engine, run_id, batch) == 2
    with engine.connect() as conn:
        # bucket 0 of level 0 holds steps 0–11: 12 points, min −1 first at step 10, max 9 at step 9.
        assert stored_rollups(conn, run_id)[(0, LOSS, 0)] == (12, -1.0, 10, 9.0, 9, None)
    with engine.begin() as conn:
        assert runs.delete_run(conn, run_id)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(metric_rollups)).scalar_one() == 0


def test_a_bucket_of_nans_only(engine):
    run_id = new_run(engine)
    put(engine, run_id, [MetricPoint(LOSS, s, math.nan, 1.0) for s in (3, 1, 2)])
    put(engine, run_id, [MetricPoint(LOSS, 0, 4.0, 1.0)])
    with engine.connect() as conn:
        rows = stored_rollups(conn, run_id)
    assert rows[(0, LOSS, 0)] == (3 + 1, 4.0, 0, 4.0, 0, 1)  # NaNs counted, not min/max; first NaN @1


def test_series_from_rollups_hand_computed(engine):
    run_id = new_run(engine)
    values = {s: float(s % 7) for s in range(200)}
    values[77], values[150], values[120] = -5.0, 100.0, math.nan
    put(engine, run_id, [MetricPoint(LOSS, s, v, 1.0) for s, v in values.items()])
    with engine.connect() as conn:
        got = metrics.series(conn, run_id, LOSS, max_points=5)
    # 200 steps > 5 and > 32·1 (raw limit for (5 − 2) // 2 = 1 bucket): rollups; steps 0–199 fit
    # one bucket at level 2 (256 steps): min −5 @77, max 100 @150, NaN @120, first (0, 0), last
    # (199, 199 mod 7 = 3).
    assert [s for s, _ in got] == [0, 77, 120, 150, 199]
    assert math.isnan(got[2][1]) and [v for s, v in got if s != 120] == [0.0, -5.0, 100.0, 3.0]


def expected_series(stored: dict[int, float | None], max_points: int, since=None, until=None):
    """series() by brute force on the rollup path: the level with at most (max_points − 2) // 2
    buckets over the window's steps, each bucket's min, max and first NaN over its points in the
    window, and the first and last points (no merging is needed for the data used here)."""
    window = {
        s: v for s, v in stored.items() if (since is None or s > since) and (until is None or s <= until)
    }
    steps = sorted(window)
    level = rollups.level_for(steps[0], steps[-1], (max_points - 2) // 2)
    groups: dict[int, list[int]] = {}
    for step in steps:
        groups.setdefault(step >> (6 + level), []).append(step)
    kept = {steps[0], steps[-1]}
    for members in groups.values():
        real = [s for s in members if window[s] is not None]
        kept.update({min(real, key=lambda s: (window[s], s)), min(real, key=lambda s: (-window[s], s))})
        kept.update([s for s in members if window[s] is None][:1])
    return sorted(kept)


@pytest.mark.parametrize(("since", "until"), [(None, None), (1_234, None), (None, 70_001), (3_000, 65_000)])
def test_series_from_rollups_equals_a_brute_force(engine, since, until):
    rng = random.Random(3)
    stored = {s: rng.gauss(0.0, 1.0) for s in range(0, 80_000, 2)}  # 40,000 points, every other step
    stored[41_000], stored[61_112], stored[7_000] = 1e9, -1e9, None
    for step, decoy in ((1_232, 5e8), (2_998, -5e8), (65_002, 5e8), (70_004, -5e8)):
        stored[step] = decoy  # just outside a window, in its edge bucket: must not leak in
    run_id = new_run(engine)
    points = [MetricPoint(LOSS, s, math.nan if v is None else v, 1.0) for s, v in stored.items()]
    put(engine, run_id, points[20_000:])  # back-filled: the later half first
    put(engine, run_id, points[:20_000])
    with engine.connect() as conn:
        got = metrics.series(conn, run_id, LOSS, max_points=300, since_step=since, until_step=until)
    steps = [s for s, _ in got]
    assert len(got) <= 300 and steps == expected_series(stored, 300, since, until)
    assert all(v == stored[s] or (math.isnan(v) and stored[s] is None) for s, v in got)
    assert (41_000, 1e9) in got and (61_112, -1e9) in got  # the spikes survive every window
    assert steps[0] == min(s for s in stored if since is None or s > since)
    assert steps[-1] == max(s for s in stored if until is None or s <= until)


def test_series_merges_buckets_when_nans_would_exceed_max_points(engine):
    run_id = new_run(engine)
    points = [MetricPoint(LOSS, s, math.nan if s % 64 == 5 else float(s % 13), 1.0) for s in range(64_000)]
    put(engine, run_id, points)
    with engine.connect() as conn:
        got = metrics.series(conn, run_id, LOSS, max_points=80)
    # (80 − 2) // 2 = 39 buckets at most: level 5 (2,048 steps) has 32, but with a NaN in each,
    # 32·3 + 2 > 80; merged pairwise: 16 buckets of 4,096 steps, each its first NaN (start + 5),
    # its first 0 and its first 12; + first (0, 0), which is bucket 0's min, + last (63,999, 0).
    nans = [s for s, v in got if math.isnan(v)]
    assert nans == [4_096 * b + 5 for b in range(16)]
    assert len(got) == 16 * 3 + 1 and got[0] == (0, 0.0) and got[-1] == (63_999, 0.0)
    assert sum(v == 12.0 for _, v in got) == 16


def test_sparse_series_comes_back_whole(engine):
    run_id = new_run(engine)
    put(engine, run_id, [MetricPoint(LOSS, s, float(s), 1.0) for s in range(0, 5_000_000, 10_000)])
    with engine.connect() as conn:
        got = metrics.series(conn, run_id, LOSS, max_points=500)
    assert got == [(s, float(s)) for s in range(0, 5_000_000, 10_000)]  # 500 points ≤ 500
