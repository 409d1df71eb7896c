"""backend.storage.db: SQLite pragmas, BEGIN IMMEDIATE writers, migrations equal to the tables."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from backend.storage import db
from backend.storage.db import head_revision, schema_differences
from backend.storage.tables import metadata


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'deep' / 'er' / 'alignscope.db'}"


def test_make_engine_creates_folder_and_sets_pragmas(url, tmp_path):
    engine = db.make_engine(url)
    with engine.connect() as conn:
        names = ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
        pragmas = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in names}
    engine.dispose()
    assert (tmp_path / "deep" / "er").is_dir()
    assert pragmas == {"journal_mode": "wal", "busy_timeout": 10_000, "synchronous": 1, "foreign_keys": 1}


def test_writers_begin_immediate_and_readers_do_not_block(url):
    holder = db.init_db(url)
    impatient = db.make_engine(url, busy_timeout_s=0.05)
    try:
        with holder.begin() as held:  # BEGIN IMMEDIATE takes the write lock before any write
            held.exec_driver_sql("SELECT 1")
            with pytest.raises(OperationalError, match="locked"), impatient.begin():
                pass
            with db.reader(impatient).begin() as conn:  # DEFERRED: reads alongside the writer
                assert conn.execute(text("SELECT count(*) FROM runs")).scalar() == 0
    finally:
        holder.dispose()
        impatient.dispose()


def test_init_db_is_idempotent_and_migrations_match_the_tables(url):
    db.init_db(url).dispose()
    engine = db.init_db(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
        assert schema_differences(conn) == []
        counters = dict(conn.execute(text("SELECT name, value FROM stream_counters")).all())
    assert counters == {"metric_points": 0, "pair_records": 0}
    engine.dispose()


def test_downgrade_to_base_and_upgrade_again(url):
    db.upgrade(url)
    engine = db.make_engine(url)
    config = db.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert inspect(engine).get_table_names() == ["alembic_version"]
    engine.dispose()
    db.upgrade(url)
    engine = db.make_engine(url)
    assert set(inspect(engine).get_table_names()) == {*metadata.tables, "alembic_version"}
    engine.dispose()


def test_postgresql_urls_use_psycopg():
    assert db.make_engine("postgresql://user@localhost/x").dialect.driver == "psycopg"
    assert db.make_engine("postgresql+psycopg://user@localhost/x").dialect.driver == "psycopg"
