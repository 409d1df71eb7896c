"""Exports: row iterators over stored metrics and pair records, and a CSV/Parquet writer.

The iterators stream from the database (the connection must stay open while they are consumed) and
yield NaN, not None, for NaN values. Metric rows are read one series at a time by (series_id, step),
the index that keeps them in step order. The ``lineage_*`` iterators read a run's lineage (a resumed
run: its parent's rows up to the resume point, then its own; each row names the run that wrote it),
and the pair export carries each record's z-score and the pair's texts.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Select, select
from sqlalchemy.engine import Connection

from backend.storage import lineage
from backend.storage.bulk import null_to_nan
from backend.storage.lineage import Segment
from backend.storage.pairs import add_texts, z_score
from backend.storage.tables import metric_points, metric_series, pair_records
from contracts.metric_keys import PAIR_COLUMNS
from contracts.user_errors import UserError

METRIC_COLUMNS: tuple[str, ...] = ("run_id", "key", "step", "value", "wall_time")
PAIR_EXPORT_COLUMNS: tuple[str, ...] = ("run_id", *PAIR_COLUMNS, "z", "prompt", "chosen", "rejected")
ExportRow = tuple[object, ...]

_BATCH = 65_536
EXPORT_SUFFIXES = (".csv", ".parquet")
_STRING = ("run_id", "key", "pair_id", "prompt", "chosen", "rejected")
_INT = ("step", "micro_batch", "chosen_tokens", "rejected_tokens")
_BOOL = ("kept",)
_FLOAT_COLUMNS = frozenset(METRIC_COLUMNS + PAIR_EXPORT_COLUMNS) - set(_STRING + _INT + _BOOL)


def metric_rows(
    conn: Connection, run_ids: str | Iterable[str], keys: Iterable[str] | None = None
) -> Iterator[ExportRow]:
    """(run_id, key, step, value, wall_time) of one run or several, ordered by run, key, step."""
    ms, mp = metric_series.c, metric_points.c
    wanted = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    found = select(ms.id, ms.run_id, ms.key).where(ms.run_id.in_(wanted))
    if keys is not None:
        found = found.where(ms.key.in_(list(keys)))
    points = select(mp.step, mp.value, mp.wall_time).order_by(mp.step)
    for series_id, run_id, key in conn.execute(found.order_by(ms.run_id, ms.key)).tuples().all():
        for row in _stream(conn, points.where(mp.series_id == series_id)):
            yield (run_id, key, *row)


def pair_rows(conn: Connection, run_id: str, step: int | None = None) -> Iterator[ExportRow]:
    """A run's pair records in PAIR_COLUMNS order, ordered by step, micro-batch, pair_id."""
    pr = pair_records.c
    stmt = select(*(pr[name] for name in PAIR_COLUMNS)).where(pr.run_id == run_id)
    if step is not None:
        stmt = stmt.where(pr.step == step)
    yield from _stream(conn, stmt.order_by(pr.step, pr.micro_batch, pr.pair_id))


def lineage_metric_rows(conn: Connection, chain: Sequence[Segment]) -> Iterator[ExportRow]:
    """METRIC_COLUMNS rows of a lineage: per key, each segment's steps in order (run_id names the run
    that logged the point)."""
    ms, mp = metric_series.c, metric_points.c
    ids = [s.run_id for s in chain]
    found = conn.execute(select(ms.id, ms.run_id, ms.key).where(ms.run_id.in_(ids))).tuples().all()
    by_key: dict[str, dict[str, int]] = {}
    for series_id, run_id, key in found:
        by_key.setdefault(key, {})[run_id] = series_id
    points = select(mp.step, mp.value, mp.wall_time).order_by(mp.step)
    for key in sorted(by_key):
        for segment in chain:
            series_id = by_key[key].get(segment.run_id)
            if series_id is None:
                continue
            for row in _stream(conn, points.where(mp.series_id == series_id, segment.steps(mp.step))):
                yield (segment.run_id, key, *row)


def lineage_pair_rows(conn: Connection, chain: Sequence[Segment]) -> Iterator[ExportRow]:
    """PAIR_EXPORT_COLUMNS rows of a lineage, ordered by step, micro-batch, pair_id."""
    pr = pair_records.c
    stmt = select(pr.run_id, *(pr[name] for name in PAIR_COLUMNS), z_score())
    stmt = add_texts(stmt.where(lineage.where(list(chain), pr.step, pr.run_id)), pr.run_id, pr.pair_id)
    yield from _stream(conn, stmt.order_by(pr.step, pr.micro_batch, pr.pair_id))


def _stream(conn: Connection, stmt: Select) -> Iterator[ExportRow]:
    result = conn.execution_options(stream_results=True, yield_per=_BATCH).execute(stmt)
    names = list(result.keys())
    floats = [i for i, name in enumerate(names) if name in _FLOAT_COLUMNS]
    kept = names.index("kept") if "kept" in names else None
    for row in result:
        values = list(row)
        for i in floats:
            values[i] = null_to_nan(values[i])
        if kept is not None:
            values[kept] = bool(values[kept])
        yield tuple(values)


class ExportFormatError(UserError):
    """An export path whose extension names no format we write."""


def export_format_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be an export target (the fix included), or None when it can."""
    target = Path(path)
    if target.suffix not in EXPORT_SUFFIXES:
        written = f"'{target.suffix}'" if target.suffix else "no extension"
        return f"'{target}' has {written}; the format is chosen by the extension: use .csv or .parquet"
    if not target.parent.is_dir():
        return f"'{target.parent}' is not a folder: create it first or write the export elsewhere"
    return None


def write_export(rows: Iterable[ExportRow], columns: Sequence[str], path: str | os.PathLike[str]) -> int:
    """Write ``rows`` to ``path`` as CSV (``.csv``) or Parquet (``.parquet``), atomically (a partial
    file never appears under the final name). Returns the number of rows written."""
    target = Path(path)
    writers = {".csv": _write_csv, ".parquet": _write_parquet}
    if (problem := export_format_problem(target)) is not None:
        raise ExportFormatError(problem)
    partial = target.with_name(target.name + ".partial")
    try:
        count = writers[target.suffix](rows, columns, partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return count


def _write_csv(rows: Iterable[ExportRow], columns: Sequence[str], path: Path) -> int:
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _arrow_type(column: str) -> pa.DataType:
    if column in _STRING:
        return pa.string()
    if column in _INT:
        return pa.int64()
    if column in _BOOL:
        return pa.bool_()
    if column in _FLOAT_COLUMNS:
        return pa.float64()
    raise ValueError(f"no Parquet type for column {column!r}")


def _write_parquet(rows: Iterable[ExportRow], columns: Sequence[str], path: Path) -> int:
    schema = pa.schema([(name, _arrow_type(name)) for name in columns])
    count = 0
    iterator = iter(rows)
    with pq.ParquetWriter(path, schema) as writer:
        while batch := list(islice(iterator, _BATCH)):
            columns_of_batch = zip(*batch, strict=True)
            arrays = [pa.array(v, type=f.type) for v, f in zip(columns_of_batch, schema, strict=True)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            count += len(batch)
    return count
