"""Query benchmark: a 1,000,000-point series downsampled to 1,000 points, server time p50/p95.

Run from the repository root::

    .venv/bin/python -m bench.query               # 1-2 min on 2 cores (each series() call takes seconds)
    .venv/bin/python -m bench.query --points 100000 --requests 10   # smoke run

A temporary SQLite database gets one run whose ``train/loss`` has ``--points`` points (a noisy
decay with a spike every 10,007 steps and a NaN every 50,021), inserted through
``backend.storage.metrics.insert_points`` in batches of 50,000. Then, ``--requests`` times each
after one untimed warm-up request (sampling stops early, after at least 3, once ``--budget-s`` is
spent):

- ``storage``: ``metrics.series(conn, run, "train/loss", 1000)`` in a read transaction;
- ``route``: ``GET /api/runs/{id}/metrics?key=train/loss&max_points=1000`` through FastAPI's
  TestClient (routing, dependencies, response model and JSON included; no network).

The peer is the target itself (p95 < 50 ms, the issue's figure). Progress goes to stderr; the last
line on stdout is one JSON object with ``p50_ms``/``p95_ms`` of the route (an upper bound of the
server time) and ``storage_p50_ms``/``storage_p95_ms``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.api import create_app
from backend.api.options import ApiOptions
from backend.queue import RecordingEnqueuer
from backend.settings import Settings
from backend.storage import metrics, runs
from backend.storage.db import reader
from contracts.events import MetricPoint

KEY = "train/loss"
BATCH = 50_000
TARGET_P95_MS = 50.0


def build_series(engine: Engine, points: int, seed: int = 0) -> str:
    """A running run with ``points`` values of KEY; returns its id."""
    rng = random.Random(seed)
    with engine.begin() as conn:
        run_id = runs.create_run(conn, '{"name": "bench"}', "bench-query", None, None)
        runs.claim_run(conn, run_id, 1)
    now = time.time()
    for start in range(0, points, BATCH):
        batch = []
        for step in range(start, min(start + BATCH, points)):
            value = 2.0 * math.exp(-step / points) + rng.gauss(0.0, 0.05)
            if step % 10_007 == 5_000:
                value *= 20.0  # a spike the min/max buckets must keep
            if step % 50_021 == 25_000:
                value = float("nan")
            batch.append(MetricPoint(KEY, step, value, now + step * 1e-3))
        with engine.begin() as conn:
            metrics.insert_points(conn, run_id, 1, batch)
        print(f"  inserted {min(start + BATCH, points):,} points", file=sys.stderr, flush=True)
    return run_id


def timed(call: Callable[[], object], repeats: int, budget_s: float, warmup: int = 0) -> list[float]:
    """Milliseconds of up to ``repeats`` calls after ``warmup`` untimed ones; stops early (after at
    least 3) once ``budget_s`` seconds were spent, so a slow query keeps the bench short."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    began = time.perf_counter()
    while len(samples) < repeats and (len(samples) < 3 or time.perf_counter() - began < budget_s):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def percentile(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between order statistics."""
    ordered = sorted(samples)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--max-points", type=int, default=1000)
    parser.add_argument("--budget-s", type=float, default=15.0, help="time budget of each side's samples")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="alignscope-bench-query-") as folder:
        data = Path(folder)
        settings = Settings(data_dir=data, database_url=f"sqlite:///{data / 'alignscope.db'}")
        app = create_app(settings, enqueuer=RecordingEnqueuer(), options=ApiOptions(), frontend_dir=None)
        engine = app.state.context.engine
        print(f"bench query: building {args.points:,} points", file=sys.stderr, flush=True)
        built = time.perf_counter()
        run_id = build_series(engine, args.points)
        build_s = time.perf_counter() - built

        def storage_call() -> object:
            with reader(engine).begin() as conn:
                return metrics.series(conn, run_id, KEY, args.max_points)

        with TestClient(app, base_url="http://localhost") as client:
            url = f"/api/runs/{run_id}/metrics"
            params = {"key": KEY, "max_points": args.max_points}

            def route_call() -> object:
                reply = client.get(url, params=params)
                assert reply.status_code == 200, reply.text
                return reply

            returned = len(route_call().json()["series"][KEY]["steps"])
            storage = timed(storage_call, args.requests, args.budget_s)
            route = timed(route_call, args.requests, args.budget_s)
        engine.dispose()
    report = {
        "bench": "query",
        "points": args.points,
        "max_points": args.max_points,
        "returned_points": returned,
        "requests": len(route),
        "storage_requests": len(storage),
        "p50_ms": round(statistics.median(route), 2),
        "p95_ms": round(percentile(route, 0.95), 2),
        "storage_p50_ms": round(statistics.median(storage), 2),
        "storage_p95_ms": round(percentile(storage, 0.95), 2),
        "build_s": round(build_s, 1),
        "target_p95_ms": TARGET_P95_MS,
        "p95_vs_target": round(percentile(route, 0.95) / TARGET_P95_MS, 3),
    }
    print(json.dumps(report, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
