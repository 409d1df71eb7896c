"""Batched idempotent inserts and upserts (the hot path) and stream-cursor allocation.

``insert_rows`` inserts a whole batch inside the caller's transaction and skips every row that
violates a unique key, so a retried batch adds nothing:

- SQLite: one DBAPI ``executemany`` of ``INSERT … ON CONFLICT DO NOTHING``;
- PostgreSQL: a binary ``COPY`` straight into the table under a savepoint, the common case (new
  rows) at about half the server time of an ``ON CONFLICT`` insert. When a row violates a unique key
  (a retried or overlapping batch, or a duplicate inside the batch) the COPY fails as a whole, the
  savepoint is rolled back and the batch goes through ``upsert_rows`` with ``ON CONFLICT DO NOTHING``
  (the staged rows in batch order, so of two rows with one key the first wins, as on SQLite).

``upsert_rows`` runs ``INSERT … <conflict clause>`` for a batch: on SQLite one ``executemany``; on
PostgreSQL a binary ``COPY`` into a temporary staging table, then one ``INSERT … SELECT``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

from sqlalchemy import BigInteger, Boolean, Float, Integer, String, Table, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from backend.storage.tables import stream_counters

Row = tuple[object, ...]
T = TypeVar("T")
UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE
DO_NOTHING = " ON CONFLICT DO NOTHING"


class Rows(Protocol):
    """Rows to insert: a sequence, or any sized collection that can be iterated more than once
    (whose rows may be built as they are iterated, while COPY sends the earlier ones)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Row]: ...


def nan_to_null(value: float) -> float | None:
    """NaN → None (stored as NULL); every other float, ±inf included, unchanged."""
    return None if value != value else value


def null_to_nan(value: float | None) -> float:
    """The inverse of ``nan_to_null`` for values read back."""
    return float("nan") if value is None else value


def allocate_seq(conn: Connection, table: str, count: int) -> int:
    """Reserve ``count`` stream-cursor values for ``table``; returns the first (1-based).

    The counter row stays locked until the caller's transaction ends, so concurrent writers commit
    in the order of their seq blocks and a reader polling ``seq > cursor`` never skips a row.
    """
    counter = stream_counters.c.value
    stmt = (
        update(stream_counters)
        .where(stream_counters.c.name == table)
        .values(value=counter + count)
        .returning(counter)
    )
    return conn.execute(stmt).scalar_one() - count + 1


def insert_rows(conn: Connection, table: Table, columns: Sequence[str], rows: Rows) -> int:
    """Insert ``rows`` (tuples in ``columns`` order), skipping any that violate a unique key.
    Returns the number of rows actually inserted."""
    return insert_rows_while(conn, table, columns, rows, _nothing)[0]


def insert_rows_while(
    conn: Connection, table: Table, columns: Sequence[str], rows: Rows, work: Callable[[], T]
) -> tuple[int, T]:
    """``insert_rows``, running ``work()`` once meanwhile: on PostgreSQL after the rows were sent and
    before COPY's outcome is awaited, so that the client's work overlaps the server's; on SQLite
    (one process) after the insert. Returns (rows inserted, what ``work`` returned)."""
    if not rows:
        return 0, work()
    if conn.dialect.name != "postgresql":
        return upsert_rows(conn, table, columns, rows, DO_NOTHING), work()
    names = ", ".join(columns)
    statement = f"COPY {table.name} ({names}) FROM STDIN (FORMAT BINARY)"
    types = [_pg_type(table.c[name].type) for name in columns]
    done: list[T] = []
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        with conn.begin_nested():
            inserted = _copy(conn, statement, types, rows, lambda: done.append(work()))
        return inserted, done[0]
    except dbapi_error as exc:  # raw driver errors → SQLAlchemy's, as for any other statement
        if getattr(exc, "sqlstate", None) != UNIQUE_VIOLATION:
            raise DBAPIError.instance(statement, None, exc, dbapi_error) from exc
    inserted = upsert_rows(conn, table, columns, rows, DO_NOTHING)
    return inserted, done[0] if done else work()


def upsert_rows(conn: Connection, table: Table, columns: Sequence[str], rows: Rows, conflict: str) -> int:
    """``INSERT INTO table (columns) … conflict`` of ``rows`` in their order; ``conflict`` is an
    ``ON CONFLICT …`` clause (it may name ``excluded``). Returns the rows inserted or updated."""
    if not rows:
        return 0
    names = ", ".join(columns)
    if conn.dialect.name != "postgresql":
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks}){conflict}"
        return conn.exec_driver_sql(sql, rows if isinstance(rows, list) else list(rows)).rowcount
    staging = f"_alignscope_in_{table.name}"
    types = [_pg_type(table.c[name].type) for name in columns]
    insert = f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging}{conflict}"
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        with conn.connection.driver_connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table.name})")
            _copy(conn, f"COPY {staging} ({names}) FROM STDIN (FORMAT BINARY)", types, rows, _nothing)
            cursor.execute(insert)
            written = cursor.rowcount
            cursor.execute(f"TRUNCATE {staging}")
    except dbapi_error as exc:
        raise DBAPIError.instance(insert, None, exc, dbapi_error) from exc
    return written


def _copy(conn: Connection, statement: str, types: list[str], rows: Rows, work: Callable[[], object]) -> int:
    """Run a binary ``COPY … FROM STDIN`` of ``rows``, calling ``work()`` after the last row is
    written and before the server's answer is awaited (raw driver errors propagate); returns the
    number of rows copied."""
    with conn.connection.driver_connection.cursor() as cursor:
        with cursor.copy(statement) as copy:
            copy.set_types(types)
            write = copy.write_row
            for row in rows:
                write(row)
            work()
        return cursor.rowcount


def _nothing() -> None:
    return None


def _pg_type(column_type: TypeEngine) -> str:
    """The PostgreSQL type name psycopg needs to dump a value of ``column_type`` in binary COPY."""
    for kind, name in ((BigInteger, "int8"), (Integer, "int4"), (Float, "float8"), (Boolean, "bool")):
        if isinstance(column_type, kind):
            return name
    if isinstance(column_type, String):
        return "text"
    raise TypeError(f"no COPY type for {column_type!r}")
