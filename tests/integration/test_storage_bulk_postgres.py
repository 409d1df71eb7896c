"""backend.storage.bulk on a real PostgreSQL server: the direct COPY, the staging fallback on a
unique-key violation (retried, overlapping and self-duplicate batches) inside one transaction, and
other errors raised as SQLAlchemy's. Each test in a fresh schema of
postgresql+psycopg://postgres@127.0.0.1:5432/test (skipped when unreachable)."""

from __future__ import annotations

import math
import uuid
from urllib.parse import quote

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.storage import metrics, runs
from backend.storage.bulk import insert_rows
from backend.storage.db import init_db
from backend.storage.tables import metric_points, metric_series
from contracts.events import MetricPoint
from tests.unit.test_storage_rollups import brute_force, new_run, stored_rollups

pytestmark = pytest.mark.postgres
SERVER = "postgresql://postgres@127.0.0.1:5432/test"
LOSS = "train/loss"
COLUMNS = ("seq", "series_id", "step", "value", "wall_time")


@pytest.fixture
def engine():
    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    schema = f"as_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    engine = init_db(
        f"{SERVER.replace('postgresql', 'postgresql+psycopg')}?options={quote(f'-csearch_path={schema}')}"
    )
    try:
        yield engine
    finally:
        engine.dispose()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def stored(conn, run: str) -> list[tuple[int, float | None]]:
    mp, ms = metric_points.c, metric_series.c
    points = select(mp.step, mp.value).join_from(metric_points, metric_series, ms.id == mp.series_id)
    rows = conn.execute(points.where(ms.run_id == run).order_by(mp.step))
    return [tuple(row) for row in rows]


def test_fallback_keeps_stored_values_the_first_duplicate_and_the_transaction(engine):
    run_id = new_run(engine)
    with engine.begin() as conn:
        first = [MetricPoint(LOSS, s, float(s), 1.0) for s in range(6)]
        assert metrics.insert_points(conn, run_id, 1, first) == 6  # COPY straight in
        # steps 4, 5 are stored (their 4.0, 5.0 stay); 6 and 7 are new; 7 comes twice: −7 (first) wins.
        overlap = [MetricPoint(LOSS, s, -float(s), 1.0) for s in (4, 5, 6, 7)]
        overlap.append(MetricPoint(LOSS, 7, 70.0, 1.0))
        assert metrics.insert_points(conn, run_id, 1, overlap) == 2
        assert metrics.insert_points(conn, run_id, 1, overlap) == 0  # an exact retry
        assert metrics.insert_points(conn, run_id, 1, [MetricPoint(LOSS, 8, math.nan, 1.0)]) == 1
        assert runs.heartbeat(conn, run_id, 1, step=8)  # the failed COPYs left the transaction usable
    with engine.connect() as conn:
        assert stored(conn, run_id) == [*((s, float(s)) for s in range(6)), (6, -6.0), (7, -7.0), (8, None)]
        # level 0, bucket 0 holds steps 0–8: 9 points, min −7 @7, max 5 @5, first NaN @8.
        assert stored_rollups(conn, run_id)[(0, LOSS, 0)] == (9, -7.0, 7, 5.0, 5, 8)
        assert stored_rollups(conn, run_id) == brute_force(conn, run_id)


def test_fallback_keeps_the_series_created_before_the_copy(engine):
    run_id = new_run(engine)
    with engine.begin() as conn:
        assert metrics.insert_points(conn, run_id, 1, [MetricPoint(LOSS, 5, 5.0, 1.0)]) == 1
        # a new series (train/lr, created before the COPY) and step 5 of the loss again: the COPY
        # fails on (series_id, step), its savepoint rolls back, the fallback stores the 3 new points.
        batch = [MetricPoint("train/lr", s, 0.1 * s, 1.0) for s in range(3)]
        batch.append(MetricPoint(LOSS, 5, 0.0, 1.0))
        assert metrics.insert_points(conn, run_id, 1, batch) == 3
        ids = metrics.series_ids(conn, run_id)
    with engine.connect() as conn:
        mp, ms = metric_points.c, metric_series.c
        points = select(mp.series_id, ms.key, mp.step, mp.value)
        rows = conn.execute(
            points.join_from(metric_points, metric_series, ms.id == mp.series_id).order_by(mp.seq)
        ).all()
    assert [tuple(row) for row in rows] == [
        (ids[LOSS], LOSS, 5, 5.0),
        *((ids["train/lr"], "train/lr", s, 0.1 * s) for s in range(3)),
    ]


def test_other_errors_are_sqlalchemy_errors(engine):
    run_id = new_run(engine)
    row = (1, 1, 0, 1.0, None)  # wall_time is NOT NULL: SQLSTATE 23502, not a duplicate
    with pytest.raises(IntegrityError, match="wall_time"), engine.begin() as conn:
        insert_rows(conn, metric_points, COLUMNS, [row])
    with engine.connect() as conn:
        assert stored(conn, run_id) == []
