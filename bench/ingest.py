"""Ingest benchmark: metric rows/s through DbSink into SQLite and PostgreSQL, against MLflow's
``SqlAlchemyStore.log_batch`` on the same kind of database, in the same run.

Run from the repository root::

    .venv/bin/python -m bench.ingest                       # ~1 min on 2 cores
    .venv/bin/python -m bench.ingest --rows 50000 --repeats 1   # smoke run

Workload: a training run's metric stream as the engine emits it, ``--keys`` scalar keys per step
(default 50) for as many steps as make ``--rows`` rows.

- ours: ``DbSink(engine, run_id, 1)`` with its defaults (a write every 50,000 rows, ``--batch-rows``,
  or every second; one transaction per chunk with the fenced insert, the rollups and the heartbeat),
  ``points()`` called once per step with that step's points, then ``close()``; timed from the first
  ``points()`` to the end of ``close()``, so every row is committed. The run row is created and
  claimed before (untimed).
- MLflow: ``SqlAlchemyStore(db_uri, artifact_root).log_batch(run_id, metrics, [], [])`` with 1,000
  metrics per call (MLflow's cap, ``MAX_METRICS_PER_BATCH``: 20 steps × 50 keys), on ``--mlflow-rows``
  rows (default a tenth of ``--rows``: it is the slower side, and rows/s is what is compared); timed
  over all calls. Each call commits.

Each side writes to its own fresh database: two SQLite files in a temporary folder (each with its
system's defaults: ours ``backend.storage.db``'s pragmas, MLflow's SQLAlchemy defaults), and two
PostgreSQL databases ``as_bench_<random>`` created on the local server and dropped at the end (PostgreSQL is
skipped, its figures null, when the server is unreachable). Every repeat logs a new run, the two
sides alternating; the figure of each side is the median over ``--repeats``. Progress goes to
stderr; the last line on stdout is one JSON object with rows/s of each side, ``ratio_* = ours /
MLflow`` (targets: ratio ≥ 5 and ours ≥ 200,000 rows/s), ``meets_targets``, each repeat's figures
(``samples``) and ``loadavg_1min`` before and after: on a shared machine a load above its core count
makes every figure low and noisy. ``pg_server_us_per_row`` is the CPU time of our side's PostgreSQL
backends per row (median; from ``/proc/<pid>/schedstat``, so only when the server runs on this
host, else null): with the rows/s it tells the server's share from the client's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from backend.storage import runs
from backend.storage.db import init_db
from contracts.events import MetricPoint
from worker.jobs.db_sink import DbSink

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
MLFLOW_BATCH = 1000
TARGETS = {"ratio": 5.0, "rows_s": 200_000}


def steps_of(rows: int, keys: int) -> Iterator[list[tuple[str, int, float]]]:
    """(key, step, value) rows grouped by step: ``keys`` per step until ``rows`` rows."""
    names = [f"bench/metric_{k:02d}" for k in range(keys)]
    for step in range(1, rows // keys + 1):
        yield [(name, step, 1.0 / (step + k)) for k, name in enumerate(names)]


def ours(url: str, rows: int, keys: int, batch_rows: int | None = None) -> tuple[float, float | None]:
    """(rows/s, server CPU µs per row or None) through DbSink (writing every ``batch_rows`` rows,
    None: its default) into the database at ``url``."""
    engine = init_db(url)
    with engine.begin() as conn:
        run_id = runs.create_run(conn, "{}", "bench", None, None)
        runs.claim_run(conn, run_id, 1)
        database = conn.exec_driver_sql("SELECT current_database()").scalar() if "postgresql" in url else None
    batches = [[MetricPoint(k, s, v, time.time()) for k, s, v in step] for step in steps_of(rows, keys)]
    batching = {} if batch_rows is None else {"batch_rows": batch_rows}
    sink = DbSink(engine, run_id, 1, total_steps=len(batches), **batching)
    server_before = backend_cpu_s(database)
    started = time.perf_counter()
    for batch in batches:
        sink.points(batch)
    sink.close()
    seconds = time.perf_counter() - started
    server_after = backend_cpu_s(database)
    engine.dispose()
    count = len(batches) * keys
    if server_before is None or server_after is None:
        return count / seconds, None
    server = sum(cpu - server_before.get(pid, 0.0) for pid, cpu in server_after.items())
    return count / seconds, server / count * 1e6


def backend_cpu_s(database: str | None) -> dict[int, float] | None:
    """CPU seconds so far of each PostgreSQL backend connected to ``database`` (pid → s), from
    /proc/<pid>/schedstat; None when not PostgreSQL or the server's processes are not visible."""
    if database is None:
        return None
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        pids = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database]).fetchall()
    try:
        return {pid: int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9 for (pid,) in pids}
    except OSError:
        return None


def mlflow(url: str, artifacts: Path, rows: int, keys: int) -> float:
    """Rows/s through MLflow's SqlAlchemyStore.log_batch into the database at ``url``."""
    from mlflow.entities import Metric
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(url, artifacts.as_uri())
    experiment = store.create_experiment(f"bench-{uuid.uuid4().hex[:8]}")
    run_id = store.create_run(experiment, "bench", int(time.time() * 1000), [], "bench").info.run_id
    flat = [row for step in steps_of(rows, keys) for row in step]
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, s) for k, s, v in flat]
    started = time.perf_counter()
    for start in range(0, len(metrics), MLFLOW_BATCH):
        store.log_batch(run_id, metrics[start : start + MLFLOW_BATCH], [], [])
    seconds = time.perf_counter() - started
    store.engine.dispose()
    return len(metrics) / seconds


@contextmanager
def pg_databases(count: int) -> Iterator[list[str] | None]:
    """``count`` fresh PostgreSQL databases (URLs), dropped afterwards; None when unreachable."""
    try:
        admin = psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL unreachable, skipped: {exc}", file=sys.stderr)
        yield None
        return
    names = [f"as_bench_{uuid.uuid4().hex[:12]}" for _ in range(count)]
    try:
        for name in names:
            admin.execute(f"CREATE DATABASE {name}")
        yield [PG_URL.format(name=name) for name in names]
    finally:
        for name in names:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


def compare(
    kind: str, our_url: str, mlflow_url: str, artifacts: Path, args: argparse.Namespace
) -> dict[str, list[float]]:
    """Rows/s of each side ("DbSink", "MLflow") per repeat on one database kind, alternating, and
    our server's CPU µs per row ("server_us", when measured)."""
    mlflow_rows = args.mlflow_rows or args.rows // 10
    figures: dict[str, list[float]] = {"DbSink": [], "MLflow": [], "server_us": []}
    for index in range(args.repeats):
        rows_s, server_us = ours(our_url, args.rows, args.keys, args.batch_rows)
        figures["DbSink"].append(rows_s)
        figures["server_us"].extend([] if server_us is None else [server_us])
        figures["MLflow"].append(mlflow(mlflow_url, artifacts, mlflow_rows, args.keys))
        load = os.getloadavg()[0]
        server = "" if server_us is None else f", server {server_us:.2f} µs/row"
        for side in ("DbSink", "MLflow"):
            rate = f"{figures[side][-1]:,.0f} rows/s{server if side == 'DbSink' else ''}"
            print(f"{kind} {side} #{index + 1}: {rate} (load {load:.2f})", file=sys.stderr, flush=True)
    return figures


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000, help="rows per DbSink measurement")
    parser.add_argument("--mlflow-rows", type=int, default=0, help="rows per MLflow measurement")
    parser.add_argument("--keys", type=int, default=50, help="metric keys per step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=None, help="DbSink batch_rows (default: its own)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    result: dict[str, object] = {"bench": "ingest"}
    load_before = os.getloadavg()[0]
    samples: dict[str, dict[str, list[float]] | None] = {}
    with tempfile.TemporaryDirectory(prefix="alignscope-ingest-") as tmp:
        folder = Path(tmp)
        sqlite_urls = (f"sqlite:///{folder / 'ours.db'}", f"sqlite:///{folder / 'mlflow.db'}")
        samples["sqlite"] = compare("sqlite", *sqlite_urls, folder, args)
        with pg_databases(2) as urls:
            samples["pg"] = compare("postgresql", urls[0], urls[1], folder, args) if urls else None
    for kind, figures in samples.items():
        result.update(_figures(kind, figures))
    measured = [result[f"{kind}_rows_s"] for kind in samples if samples[kind]]
    ratios = [result[f"ratio_{kind}"] for kind in samples if samples[kind]]
    result["targets"] = TARGETS
    result["meets_targets"] = bool(measured) and all(
        rows_s >= TARGETS["rows_s"] and ratio >= TARGETS["ratio"]
        for rows_s, ratio in zip(measured, ratios, strict=True)
    )
    server_us = samples["pg"]["server_us"] if samples["pg"] else []
    result["pg_server_us_per_row"] = round(statistics.median(server_us), 2) if server_us else None
    result["samples"] = {
        kind: {
            side: [round(v, 2 if side == "server_us" else None) for v in values]
            for side, values in figures.items()
        }
        if figures
        else None
        for kind, figures in samples.items()
    }
    result.update(rows=args.rows, keys=args.keys, repeats=args.repeats)
    result["loadavg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result))
    return result


def _figures(kind: str, figures: dict[str, list[float]] | None) -> dict[str, float | None]:
    """``{kind}_rows_s`` (ours), ``mlflow_{kind}_rows_s`` (medians) and their ratio; None when the
    database was unreachable."""
    if not figures:
        return {f"{kind}_rows_s": None, f"mlflow_{kind}_rows_s": None, f"ratio_{kind}": None}
    ours_s, theirs = statistics.median(figures["DbSink"]), statistics.median(figures["MLflow"])
    return {
        f"{kind}_rows_s": round(ours_s),
        f"mlflow_{kind}_rows_s": round(theirs),
        f"ratio_{kind}": round(ours_s / theirs, 2),
    }


if __name__ == "__main__":
    main()
