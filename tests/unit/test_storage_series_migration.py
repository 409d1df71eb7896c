"""Migration 0005 on SQLite (``migrate_and_check`` also runs on PostgreSQL, from
tests/integration/test_storage_postgres.py): a store at 0004 holding points upgrades to one
``metric_series`` row per (run_id, key), each point's series_id naming its own series, uniqueness on
(series_id, step), and reads and writes that go on as before; the downgrade keeps every point under
the (run_id, key, step) constraint again."""

from __future__ import annotations

import math

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError

from backend.storage import db, exports, metrics, runs
from backend.storage.db import schema_differences
from contracts.events import MetricPoint

LOSS, LR = "train/loss", "train/lr"
COLUMNS = "seq, run_id, key, step, value, wall_time"
INSERT = text(f"INSERT INTO metric_points ({COLUMNS}) VALUES (:{COLUMNS.replace(', ', ', :')})")
INSERT_IN_SERIES = text(  # at head (0008), where a point names its series by id only
    "INSERT INTO metric_points (seq, series_id, step, value, wall_time)"
    " VALUES (:seq, :series_id, :step, :value, :wall_time)"
)
SERIES_OF_POINTS = text(
    "SELECT s.run_id, s.key, p.step, p.value FROM metric_points AS p"
    " LEFT JOIN metric_series AS s ON s.id = p.series_id ORDER BY p.seq"
)


def _point(seq: int, run_id: str, key: str, step: int, value: float | None) -> dict[str, object]:
    return {"seq": seq, "run_id": run_id, "key": key, "step": step, "value": value, "wall_time": 1.0}


def _store_at_0004(url: str) -> tuple[str, str]:
    """Two claimed runs a, b at schema 0004 with 5 points: (a, loss) steps 0, 1, 2 (the middle one
    NaN, stored NULL), (a, lr) step 0 and (b, loss) step 0, in seq 1..5 out of key order."""
    db.upgrade(url, "0004")
    engine = db.make_engine(url)
    with engine.begin() as conn:
        a, b = (runs.create_run(conn, "{}", name, None, None) for name in "ab")
        assert runs.claim_run(conn, a, 1) and runs.claim_run(conn, b, 1)
        rows = [(a, LOSS, 2, 0.3), (a, LR, 0, 1e-3), (b, LOSS, 0, 9.0), (a, LOSS, 0, 0.5), (a, LOSS, 1, None)]
        conn.execute(INSERT, [_point(seq, *row) for seq, row in enumerate(rows, start=1)])
        conn.execute(text("UPDATE stream_counters SET value = 5 WHERE name = 'metric_points'"))
    engine.dispose()
    return a, b


def _downgrade(engine, revision: str) -> None:
    config = db.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def _refused(conn: Connection, statement, point: dict[str, object]) -> str:
    """The database's message refusing to insert ``point`` (lower case), rolled back."""
    with pytest.raises(IntegrityError) as refused, conn.begin_nested():
        conn.execute(statement, point)
    return str(refused.value.orig).lower()


def migrate_and_check(url: str) -> None:
    """Build a store at 0004 at ``url`` (empty), upgrade it to head and downgrade it to 0004 again,
    asserting what each step must keep."""
    a, b = _store_at_0004(url)
    db.upgrade(url)
    engine = db.make_engine(url)
    with engine.begin() as conn:
        assert schema_differences(conn) == []
        series = conn.execute(text("SELECT id, run_id, key FROM metric_series")).all()
        assert sorted((run_id, key) for _, run_id, key in series) == sorted([(a, LOSS), (a, LR), (b, LOSS)])
        joined = conn.execute(SERIES_OF_POINTS).all()
        assert [tuple(row) for row in joined] == [  # each point's series is its former (run_id, key)
            (a, LOSS, 2, 0.3),
            (a, LR, 0, 1e-3),
            (b, LOSS, 0, 9.0),
            (a, LOSS, 0, 0.5),
            (a, LOSS, 1, None),
        ]
        loss_of_a = metrics.series_ids(conn, a)[LOSS]
        taken = {**_point(6, a, LOSS, 1, 7.0), "series_id": loss_of_a}  # (series_id, step) is stored
        refusal = _refused(conn, INSERT_IN_SERIES, taken)
        assert "unique" in refusal and "series_id" in refusal
        # steps 2 (stored, 0.3 stays) and 3 (new) of (a, loss); a new series (b, lr).
        new = [MetricPoint(LOSS, 2, -1.0, 2.0), MetricPoint(LOSS, 3, 0.1, 2.0), MetricPoint(LR, 5, 2e-3, 2.0)]
        assert metrics.insert_points(conn, b, 1, new[2:]) == 1
        assert metrics.insert_points(conn, a, 1, new[:2]) == 1
        assert metrics.insert_points(conn, a, 1, new[:2]) == 0  # a retry adds nothing
        got = metrics.series(conn, a, LOSS)
        assert got[0] == (0, 0.5) and got[1][0] == 1 and math.isnan(got[1][1])
        assert got[2:] == [(2, 0.3), (3, 0.1)]
        assert metrics.keys(conn, b) == [LOSS, LR] and len(set(metrics.series_ids(conn, b).values())) == 2
        assert [row[:3] for row in exports.metric_rows(conn, b)] == [(b, LOSS, 0), (b, LR, 5)]
    _downgrade(engine, "0004")
    with engine.begin() as conn:
        assert "metric_series" not in inspect(conn).get_table_names()
        points = conn.execute(text("SELECT run_id, key, step FROM metric_points ORDER BY seq")).all()
        # seq 6: (b, lr) step 5; 7, 8: (a, loss) steps 2 (a duplicate, not stored) and 3; 9, 10: the retry.
        assert [tuple(row) for row in points[5:]] == [(b, LR, 5), (a, LOSS, 3)]
        refusal = _refused(conn, INSERT, _point(99, a, LOSS, 3, 1.0))
        assert "unique" in refusal and "series_id" not in refusal and "step" in refusal
    engine.dispose()


def test_migration_0005_backfills_series_and_downgrades(tmp_path):
    migrate_and_check(f"sqlite:///{tmp_path / 'alignscope.db'}")


@pytest.mark.parametrize("revision", ["0004", "base"])
def test_upgrade_from_an_empty_store(tmp_path, revision):
    url = f"sqlite:///{tmp_path / 'alignscope.db'}"
    if revision != "base":
        db.upgrade(url, revision)
    engine = db.init_db(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM metric_series")).scalar_one() == 0
        assert schema_differences(conn) == []
    engine.dispose()
