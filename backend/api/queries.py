"""Read-side compositions of storage calls that several routes share: downsampled series of one run
or of several (compare), and exports written to a temporary file that the response then streams.
A run's series and exports cover its lineage (see backend.storage.lineage): a resumed run shows its
parent's steps up to the resume point, then its own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from backend.api.deps import find_run
from backend.api.models import CompareOut, MetricsOut, PairOut, RunOut, SegmentOut, SeriesOut
from backend.keep_probability import inclusion_probabilities
from backend.storage import exports, lineage, metrics, pairs
from backend.storage.lineage import Segment
from backend.storage.pairs import PairRow
from backend.storage.runs import RunRow

ExportWhat = Literal["metrics", "pairs"]
ExportFormat = Literal["csv", "parquet"]


def series_of(
    conn: Connection, chain: Sequence[Segment], keys: Sequence[str], max_points: int
) -> dict[str, SeriesOut]:
    """key → the lineage's downsampled series (min/max buckets, first and last of each segment kept;
    each segment gets ``max_points``); unknown keys are empty."""
    return {
        key: SeriesOut.of(
            [
                point
                for s in chain
                for point in metrics.series(conn, s.run_id, key, max_points, s.after_step, s.until_step)
            ]
        )
        for key in dict.fromkeys(keys)
    }


def keys_of(conn: Connection, chain: Sequence[Segment]) -> list[str]:
    """Every metric key of a lineage, sorted."""
    return sorted({key for s in chain for key in metrics.keys(conn, s.run_id)})


def metrics_of(conn: Connection, run_id: str, keys: Sequence[str] | None, max_points: int) -> MetricsOut:
    """The run's series of ``keys`` (all its lineage's keys when None) over its lineage, and the stream
    cursor read first, so streaming from it afterwards misses nothing."""
    cursor = metrics.last_seq(conn)
    chain = lineage.segments(conn, run_id)
    wanted = keys_of(conn, chain) if keys is None else keys
    return MetricsOut(
        run_id=run_id,
        series=series_of(conn, chain, wanted, max_points),
        last_seq=cursor,
        lineage=[SegmentOut.of(s) for s in chain],
    )


def compare_of(conn: Connection, run_ids: Sequence[str], keys: Sequence[str], max_points: int) -> CompareOut:
    """The runs (404 for an unknown one) and each one's series of ``keys`` over its lineage."""
    unique = list(dict.fromkeys(run_ids))
    rows = [find_run(conn, run_id) for run_id in unique]
    chains = {row.id: lineage.segments(conn, row.id) for row in rows}
    return CompareOut(
        runs=[RunOut.of(row) for row in rows],
        series={row.id: series_of(conn, chains[row.id], keys, max_points) for row in rows},
        lineage={run_id: [SegmentOut.of(s) for s in chain] for run_id, chain in chains.items()},
    )


def with_keep_probability(
    conn: Connection, run: RunRow, rows: Sequence[PairRow], chain: Sequence[Segment]
) -> list[PairOut]:
    """``rows`` with each one's keep probability: the inclusion probability of Gumbel-top-k over the
    stored weights of the pairs it was drawn among, k = how many of them were kept — the whole step
    with ``beta_dpo.scope: batch`` (one calibration per optimizer step), else its micro-batch (runs
    recorded before the scope existed calibrated per micro-batch)."""
    scope = (json.loads(run.config or "{}").get("beta_dpo") or {}).get("scope", "micro_batch")
    groups = {(r.record.step, None if scope == "batch" else r.record.micro_batch) for r in rows}
    chances: dict[int, float] = {}
    for members in pairs.micro_batch_weights(conn, run.id, groups, chain).values():
        kept = sum(k for _, _, k in members)
        weights = [w for _, w, _ in members]
        for (seq, _, _), chance in zip(members, inclusion_probabilities(weights, kept), strict=True):
            chances[seq] = chance
    return [PairOut.of(row, chances.get(row.seq)) for row in rows]


def export_file(engine: Engine, folder: Path, run_id: str, what: ExportWhat, fmt: ExportFormat) -> Path:
    """Write the run's metrics or pair records to ``folder/<uuid>-<run>-<what>.<fmt>``; the caller
    deletes the file once sent."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}-{run_id}-{what}.{fmt}"
    with engine.connect() as conn:
        chain = lineage.segments(conn, run_id)
        if what == "metrics":
            exports.write_export(exports.lineage_metric_rows(conn, chain), exports.METRIC_COLUMNS, path)
        else:
            exports.write_export(exports.lineage_pair_rows(conn, chain), exports.PAIR_EXPORT_COLUMNS, path)
    return path
