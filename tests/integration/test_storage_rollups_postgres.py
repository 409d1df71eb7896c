"""Rollups on a real PostgreSQL server (the unnest upsert and the migration's backfill), each test in
a fresh schema. Server: postgresql+psycopg://postgres@127.0.0.1:5432/test (skipped when unreachable)."""

from __future__ import annotations

import math
import uuid
from urllib.parse import quote

import psycopg
import pytest
from alembic import command

from backend.storage import db, metrics
from contracts.events import MetricPoint
from tests.unit.test_storage_rollups import (
    LOSS,
    brute_force,
    expected_series,
    new_run,
    put,
    random_batches,
    stored_rollups,
)

pytestmark = pytest.mark.postgres
SERVER = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def url():
    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    schema = f"as_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options={quote(f'-csearch_path={schema}')}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture
def engine(url):
    engine = db.init_db(url)
    yield engine
    engine.dispose()


def test_upsert_and_backfill_equal_a_brute_force(engine):
    run_id = new_run(engine)
    inserted = sum(put(engine, run_id, batch) for batch in random_batches(seed=4, keys=2, steps=3_000))
    with engine.connect() as conn:
        expected = brute_force(conn, run_id)
        assert inserted == 2 * 3_300 and stored_rollups(conn, run_id) == expected
    config = db.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
        command.upgrade(config, "head")  # 0002 rebuilds the rollups from metric_points
    with engine.connect() as conn:
        assert stored_rollups(conn, run_id) == expected


def test_series_from_rollups_with_a_window(engine):
    stored = {s: float((s * 7919) % 1_000) for s in range(20_000)}
    stored[12_345], stored[500] = 1e6, None
    run_id = new_run(engine)
    put(engine, run_id, [MetricPoint(LOSS, s, math.nan if v is None else v, 1.0) for s, v in stored.items()])
    with engine.connect() as conn:
        whole = metrics.series(conn, run_id, LOSS, max_points=100)
        window = metrics.series(conn, run_id, LOSS, max_points=100, since_step=333, until_step=15_000)
    assert [s for s, _ in whole] == expected_series(stored, 100)
    assert [s for s, _ in window] == expected_series(stored, 100, 333, 15_000)
    assert (12_345, 1e6) in window and any(s == 500 and math.isnan(v) for s, v in window)
