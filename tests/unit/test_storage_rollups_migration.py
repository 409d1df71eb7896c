"""Migration 0006 on SQLite (``migrate_and_check`` also runs on PostgreSQL, from
tests/integration/test_storage_postgres.py): metric_rollups loses its foreign key to runs and keeps
its rows, its primary key and (SQLite) ``WITHOUT ROWID``; upserts and reads go on as before and
``runs.delete_run`` still removes a run's rollups; the downgrade restores the key."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.exc import IntegrityError

from backend.storage import db, metrics, rollups, runs
from backend.storage.db import head_revision, schema_differences
from backend.storage.tables import metric_rollups
from contracts.events import MetricPoint
from tests.unit.test_storage_rollups import brute_force, stored_rollups

LOSS = "train/loss"
ORPHAN = text(
    "INSERT INTO metric_rollups (run_id, level, key, bucket, count) VALUES ('no-such-run', 0, 'k', 0, 1)"
)


def _foreign_keys(conn: Connection) -> list[str]:
    return [fk["referred_table"] for fk in inspect(conn).get_foreign_keys("metric_rollups")]


def _without_rowid(conn: Connection) -> bool | None:
    """SQLite: whether metric_rollups is a WITHOUT ROWID table; None on other databases."""
    if conn.dialect.name != "sqlite":
        return None
    sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'metric_rollups'")).scalar_one()
    return "WITHOUT ROWID" in sql.upper()


def _orphan_refused(conn: Connection) -> bool:
    """Whether a rollup row of a run that does not exist is refused (rolled back either way)."""
    try:
        with conn.begin_nested() as nested:
            conn.execute(ORPHAN)
            nested.rollback()
    except IntegrityError:
        return True
    return False


def _downgrade(engine, revision: str) -> None:
    config = db.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def _insert_at_0005(conn: Connection, run_id: str, points: list[MetricPoint]) -> None:
    """What ``metrics.insert_points`` did at 0005 (points kept their run_id and key then): one
    series, its points at seq 1, 2, …, and their rollups."""
    conn.execute(text("INSERT INTO metric_series (run_id, key) VALUES (:r, :k)"), {"r": run_id, "k": LOSS})
    counter = "UPDATE stream_counters SET value = :n WHERE name = 'metric_points'"
    conn.execute(text(counter), {"n": len(points)})
    series_id = metrics.series_ids(conn, run_id)[LOSS]
    rows = [
        {"seq": seq, "r": run_id, "k": p.key, "step": p.step, "v": p.value, "t": p.wall_time, "s": series_id}
        for seq, p in enumerate(points, start=1)
    ]
    insert = "INSERT INTO metric_points (seq, run_id, key, step, value, wall_time, series_id)"
    conn.execute(text(f"{insert} VALUES (:seq, :r, :k, :step, :v, :t, :s)"), rows)
    rollups.fold_in(conn, run_id, 1, points, len(points), rollups.summarize(points))


def migrate_and_check(url: str) -> None:
    """Build a store at 0005 at ``url`` (empty) with one run's points, upgrade it to head and
    downgrade it to 0005 again, asserting what each step must keep."""
    db.upgrade(url, "0005")
    engine = db.make_engine(url)
    # steps 0..99: level 0 buckets 0 (steps 0–63) and 1 (64–99); value = step, so min 0 @0, max 99 @99.
    points = [MetricPoint(LOSS, step, float(step), 1.0) for step in range(100)]
    with engine.begin() as conn:
        run_id = runs.create_run(conn, "{}", "run", None, None)
        assert runs.claim_run(conn, run_id, 1)
        _insert_at_0005(conn, run_id, points)
        before = stored_rollups(conn, run_id)
        assert _foreign_keys(conn) == ["runs"] and _orphan_refused(conn)
        rowid = _without_rowid(conn)
    assert before[(0, LOSS, 0)] == (64, 0.0, 0, 63.0, 63, None)
    db.upgrade(url)
    with engine.begin() as conn:
        assert schema_differences(conn) == []
        assert _foreign_keys(conn) == [] and not _orphan_refused(conn)
        assert stored_rollups(conn, run_id) == before and _without_rowid(conn) == rowid
        pk = inspect(conn).get_pk_constraint("metric_rollups")["constrained_columns"]
        assert pk == ["run_id", "level", "key", "bucket"]
        more = [MetricPoint(LOSS, step, -1.0, 2.0) for step in (99, 100)]  # 99 is stored: only 100 is new
        assert metrics.insert_points(conn, run_id, 1, more) == 1
        # level 0 bucket 1: steps 64–100, 37 points, min −1 @100, max 99 @99.
        assert stored_rollups(conn, run_id)[(0, LOSS, 1)] == (37, -1.0, 100, 99.0, 99, None)
        assert stored_rollups(conn, run_id) == brute_force(conn, run_id)
    _downgrade(engine, "0005")
    with engine.begin() as conn:
        assert _foreign_keys(conn) == ["runs"] and _orphan_refused(conn)
        assert stored_rollups(conn, run_id) == brute_force(conn, run_id) and _without_rowid(conn) == rowid
        assert runs.delete_run(conn, run_id)
        assert conn.execute(select(metric_rollups)).all() == []
    engine.dispose()


def test_migration_0006_drops_the_rollups_foreign_key_and_downgrades(tmp_path):
    migrate_and_check(f"sqlite:///{tmp_path / 'alignscope.db'}")


@pytest.mark.parametrize("revision", ["0005", "base"])
def test_upgrade_from_an_empty_store(tmp_path, revision):
    url = f"sqlite:///{tmp_path / 'alignscope.db'}"
    if revision != "base":
        db.upgrade(url, revision)
    engine = db.init_db(url)
    with engine.begin() as conn:
        assert schema_differences(conn) == []
        assert _foreign_keys(conn) == [] and _without_rowid(conn)
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    engine.dispose()
