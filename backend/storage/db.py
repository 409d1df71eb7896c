"""Engines and schema upgrades.

SQLite (the embedded default) gets WAL, a busy timeout, ``synchronous=NORMAL``, enforced foreign
keys, an 8 MiB page cache and a WAL checkpoint every 10,000 pages (both measured by bench/ingest.py:
fewer cache spills and checkpoints in the bulk writer's commits), and transactions that begin with
``BEGIN IMMEDIATE`` (SQLAlchemy's documented pysqlite recipe: the driver's own BEGIN is switched off
and the engine's "begin" event emits ours), so two writers queue on the busy timeout instead of
failing when a read transaction upgrades to a write. Read-only users may take ``reader(engine)``,
whose transactions begin DEFERRED and never block a writer.

PostgreSQL goes through psycopg 3 (``postgresql+psycopg://``; a bare ``postgresql://`` is mapped to it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url

from backend.storage.tables import in_schema_of, metadata

SQLITE_BEGIN = "alignscope_sqlite_begin"
MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x41534D49  # pg_advisory_xact_lock key serializing concurrent upgrades


def make_engine(url: str, *, busy_timeout_s: float = 10.0) -> Engine:
    """An engine for ``url``. busy_timeout_s: how long a SQLite writer waits for the write lock
    (ignored for PostgreSQL). Creates the SQLite file's parent folder."""
    parsed = _normalize(make_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, busy_timeout_s)
    return create_engine(parsed, pool_pre_ping=True)


def reader(engine: Engine) -> Engine:
    """The same engine (same pool) whose SQLite transactions begin DEFERRED: for read-only work."""
    return engine.execution_options(**{SQLITE_BEGIN: "DEFERRED"})


def init_db(url: str) -> Engine:
    """Upgrade the database at ``url`` to the newest schema and return an engine for it."""
    engine = make_engine(url)
    _upgrade(engine, "head")
    return engine


def upgrade(url: str, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision``; no alembic.ini is needed."""
    engine = make_engine(url)
    try:
        _upgrade(engine, revision)
    finally:
        engine.dispose()


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (for programmatic commands)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def schema_differences(conn: Connection) -> list[Any]:
    """Alembic's differences between the database behind ``conn`` and ``tables.metadata`` (empty
    when the migrations built exactly that schema), leaving out the objects that exist only in
    another dialect's schema."""

    def include(schema_object: Any, _name: Any, _type: Any, reflected: bool, _compare_to: Any) -> bool:
        return reflected or in_schema_of(conn.dialect.name, schema_object)

    context = MigrationContext.configure(conn, opts={"include_object": include})
    return list(compare_metadata(context, metadata))


def _upgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        _lock_for_migration(conn)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def _lock_for_migration(conn: Connection) -> None:
    """Serialize concurrent upgrades (API and workers starting together). SQLite's BEGIN IMMEDIATE
    already does; PostgreSQL takes a transaction-scoped advisory lock."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")


def _normalize(url: URL) -> URL:
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    return url


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})
    pragmas = (
        "journal_mode=WAL",
        f"busy_timeout={round(busy_timeout_s * 1000)}",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "cache_size=-8192",  # KiB: a 50,000-point DbSink transaction dirties ~7 MB (2 MB would spill)
        "wal_autocheckpoint=10000",  # pages: checkpoint (and fsync) every ~40 MB of WAL, not every 4 MB
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver must not emit its own BEGIN
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get(SQLITE_BEGIN, 'IMMEDIATE')}")

    return engine


def head_revision() -> str:
    """The newest migration's revision id (what ``init_db`` upgrades a store to)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head
