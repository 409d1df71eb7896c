"""Batched idempotent inserts (the hot path) and stream-cursor allocation.

``insert_rows`` runs ``INSERT … ON CONFLICT DO NOTHING`` for a whole batch inside the caller's
transaction: on SQLite one DBAPI ``executemany``; on PostgreSQL a binary ``COPY`` into a temporary
table, then one ``INSERT … SELECT … ON CONFLICT DO NOTHING``. A retried batch therefore adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, Boolean, Float, Integer, String, Table, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from backend.storage.tables import stream_counters

Row = tuple[object, ...]


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


def insert_rows(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Row]) -> int:
    """Insert ``rows`` (tuples in ``columns`` order), skipping any that violate a unique key.
    Returns the number of rows actually inserted."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        return _copy_insert(conn, table, columns, rows)
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    return conn.exec_driver_sql(sql, list(rows)).rowcount


def _copy_insert(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Row]) -> int:
    staging = f"_alignscope_in_{table.name}"
    names = ", ".join(columns)
    statements = (
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table.name})",
        f"COPY {staging} ({names}) FROM STDIN (FORMAT BINARY)",
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} ON CONFLICT DO NOTHING",
        f"TRUNCATE {staging}",
    )
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        with conn.connection.driver_connection.cursor() as cursor:
            cursor.execute(statements[0])
            with cursor.copy(statements[1]) as copy:
                copy.set_types([_pg_type(table.c[name].type) for name in columns])
                for row in rows:
                    copy.write_row(row)
            cursor.execute(statements[2])
            inserted = cursor.rowcount
            cursor.execute(statements[3])
    except dbapi_error as exc:  # raw driver errors → SQLAlchemy's, as for any other statement
        raise DBAPIError.instance(statements[2], None, exc, dbapi_error) from exc
    return inserted


def _pg_type(column_type: TypeEngine) -> str:
    """The PostgreSQL type name psycopg needs to dump a value of ``column_type`` in binary COPY."""
    for kind, name in ((BigInteger, "int8"), (Integer, "int4"), (Float, "float8"), (Boolean, "bool")):
        if isinstance(column_type, kind):
            return name
    if isinstance(column_type, String):
        return "text"
    raise TypeError(f"no COPY type for {column_type!r}")
