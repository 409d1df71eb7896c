"""backend.storage.bulk on SQLite: idempotent batch inserts, the work run meanwhile, upserts.
(PostgreSQL's COPY and its fallback: tests/integration/test_storage_bulk_postgres.py.)"""

from __future__ import annotations

from sqlalchemy import select

from backend.storage.bulk import DO_NOTHING, insert_rows, insert_rows_while, upsert_rows
from backend.storage.tables import stream_counters

COLUMNS = ("name", "value")


def _counters(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(stream_counters.c.name, stream_counters.c.value)).all())


def test_insert_rows_while_runs_the_work_once_and_skips_existing_keys(engine):
    calls = []

    def work() -> str:
        calls.append(1)
        return "done"

    rows = [("a", 1), ("b", 2), ("a", 3), ("metric_points", 9)]  # "a" twice: the first wins
    with engine.begin() as conn:
        assert insert_rows_while(conn, stream_counters, COLUMNS, rows, work) == (2, "done")
        assert insert_rows_while(conn, stream_counters, COLUMNS, [], lambda: 7) == (0, 7)
        assert insert_rows(conn, stream_counters, COLUMNS, rows) == 0  # a retry adds nothing
    assert calls == [1]
    assert _counters(engine) == {"metric_points": 0, "pair_records": 0, "a": 1, "b": 2}


def test_upsert_rows_applies_the_conflict_clause_in_order(engine):
    add = " ON CONFLICT (name) DO UPDATE SET value = stream_counters.value * 10 + excluded.value"
    with engine.begin() as conn:
        assert upsert_rows(conn, stream_counters, COLUMNS, [("a", 1)], DO_NOTHING) == 1
        # a: 1 → 1·10 + 2 = 12 → 12·10 + 3 = 123 (rows in order); pair_records: 0·10 + 4 = 4.
        assert (
            upsert_rows(conn, stream_counters, COLUMNS, [("a", 2), ("a", 3), ("pair_records", 4)], add) == 3
        )
        assert upsert_rows(conn, stream_counters, COLUMNS, [], add) == 0
    assert _counters(engine) == {"metric_points": 0, "pair_records": 4, "a": 123}
