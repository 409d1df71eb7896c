"""Read-side compositions of storage calls that several routes share: downsampled series of one run
or of several (compare), and exports written to a temporary file that the response then streams."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from backend.api.deps import find_run
from backend.api.models import CompareOut, MetricsOut, RunOut, SeriesOut
from backend.storage import exports, metrics
from contracts.metric_keys import PAIR_COLUMNS

ExportWhat = Literal["metrics", "pairs"]
ExportFormat = Literal["csv", "parquet"]


def series_of(conn: Connection, run_id: str, keys: Sequence[str], max_points: int) -> dict[str, SeriesOut]:
    """key → downsampled series (min/max buckets, first and last kept); unknown keys are empty."""
    return {key: SeriesOut.of(metrics.series(conn, run_id, key, max_points)) for key in dict.fromkeys(keys)}


def metrics_of(conn: Connection, run_id: str, keys: Sequence[str] | None, max_points: int) -> MetricsOut:
    """The run's series of ``keys`` (all its keys when None) and the stream cursor read first, so
    streaming from it afterwards misses nothing."""
    cursor = metrics.last_seq(conn)
    wanted = metrics.keys(conn, run_id) if keys is None else keys
    return MetricsOut(run_id=run_id, series=series_of(conn, run_id, wanted, max_points), last_seq=cursor)


def compare_of(conn: Connection, run_ids: Sequence[str], keys: Sequence[str], max_points: int) -> CompareOut:
    """The runs (404 for an unknown one) and each one's series of ``keys``."""
    unique = list(dict.fromkeys(run_ids))
    rows = [find_run(conn, run_id) for run_id in unique]
    return CompareOut(
        runs=[RunOut.of(row) for row in rows],
        series={row.id: series_of(conn, row.id, keys, max_points) for row in rows},
    )


def export_file(engine: Engine, folder: Path, run_id: str, what: ExportWhat, fmt: ExportFormat) -> Path:
    """Write the run's metrics or pair records to ``folder/<uuid>-<run>-<what>.<fmt>``; the caller
    deletes the file once sent."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}-{run_id}-{what}.{fmt}"
    with engine.connect() as conn:
        if what == "metrics":
            exports.write_export(exports.metric_rows(conn, run_id), exports.METRIC_COLUMNS, path)
        else:
            exports.write_export(exports.pair_rows(conn, run_id), PAIR_COLUMNS, path)
    return path
