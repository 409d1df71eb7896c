"""Live-stream benchmark: time from a trainer's write to the SSE client, p50/p95.

Run from the repository root::

    .venv/bin/python -m bench.live                 # ~20 s
    .venv/bin/python -m bench.live --seconds 5     # smoke run
    .venv/bin/python -m bench.live --database postgresql

A real uvicorn process serves ``backend.api.create_app()`` on 127.0.0.1 (a free port) over a
temporary SQLite database, or with ``--database postgresql`` a fresh database on the local
PostgreSQL server (dropped afterwards; bench/ingest.py's ``pg_databases``). In this process a
writer thread plays the trainer: ``--rate`` times a second it inserts ``--batch`` points of one
run through ``backend.storage.metrics.insert_points`` (its own engine, as the trainer's DbSink
does), noting the clock just before each insert. An httpx
client reads ``GET /api/runs/{id}/stream?after=0`` and notes when each point's event arrives.
Latency of a point = arrival − the start of its insert (same clock, same machine). The stream polls
the database every 200 ms, so about 100 ms on average is the design's own floor.

The peer is the target (p95 < 500 ms, the issue's figure). Progress goes to stderr; the last line on
stdout is one JSON object; ``missing`` and ``duplicates`` must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import httpx
from sqlalchemy import Engine

from backend.storage import metrics, runs
from backend.storage.db import init_db
from bench.ingest import pg_databases
from bench.query import percentile
from contracts.events import MetricPoint

TARGET_P95_MS = 500.0
KEY = "train/loss"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data: Path, database_url: str, port: int) -> subprocess.Popen:
    """uvicorn in a child process over ``database_url``, ready when /api/health answers."""
    run = f"uvicorn.run(a.create_app(), port={port}, log_level='warning', timeout_graceful_shutdown=2)"
    code = f"import uvicorn, backend.api as a; {run}"
    env = {**os.environ, "ALIGNSCOPE_DATA_DIR": str(data), "ALIGNSCOPE_DATABASE_URL": database_url}
    server = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("uvicorn did not start")


def measure(
    data: Path, url: str, args: argparse.Namespace
) -> tuple[dict[int, float], dict[int, list[float]]]:
    """Serve ``url``, stream one run while writing into it; (insert start, arrival times) by step."""
    engine = init_db(url)
    with engine.begin() as conn:
        run_id = runs.create_run(conn, '{"name": "bench"}', "bench-live", None, None)
        runs.claim_run(conn, run_id, 1)
    port = free_port()
    server = start_server(data, url, port)
    started: dict[int, float] = {}
    arrived: dict[int, list[float]] = {}
    stop = threading.Event()
    stream = f"http://127.0.0.1:{port}/api/runs/{run_id}/stream?after=0"
    listener = threading.Thread(target=listen, args=(stream, arrived, stop), daemon=True)
    try:
        listener.start()
        time.sleep(0.5)  # the client is connected and polling
        print(f"bench live: writing for {args.seconds:.0f} s", file=sys.stderr, flush=True)
        write(engine, run_id, args.rate, args.batch, args.seconds, started)
        time.sleep(1.0)  # the last polls
        stop.set()
    finally:
        server.terminate()  # ends the stream after uvicorn's 2 s graceful-shutdown timeout
        server.wait(timeout=10)
        listener.join(timeout=5)
        engine.dispose()
    return started, arrived


def write(
    engine: Engine, run_id: str, rate: float, batch: int, seconds: float, started: dict[int, float]
) -> None:
    """Insert ``batch`` points ``rate`` times a second for ``seconds``; started[step] = insert start."""
    interval, step = 1.0 / rate, 0
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        now = time.time()
        points = [MetricPoint(KEY, step + i, float(step + i), now) for i in range(batch)]
        started.update({p.step: now for p in points})
        with engine.begin() as conn:
            metrics.insert_points(conn, run_id, 1, points)
        step += batch
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))


def listen(url: str, arrived: dict[int, list[float]], stop: threading.Event) -> None:
    """Record the arrival time of every point of the stream until ``stop`` is set or the server
    closes the stream."""
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(5.0, read=30.0)) as reply:
            for line in reply.iter_lines():
                if line.startswith("data: ") and '"points"' in line:
                    now = time.time()
                    for point in json.loads(line[len("data: ") :])["points"]:
                        arrived.setdefault(point["step"], []).append(now)
                if stop.is_set():
                    return
    except httpx.TransportError:
        return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=20.0, help="inserts per second")
    parser.add_argument("--batch", type=int, default=5, help="points per insert")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)
    databases = pg_databases(1) if args.database == "postgresql" else nullcontext(None)
    with tempfile.TemporaryDirectory(prefix="alignscope-bench-live-") as folder, databases as pg_urls:
        data = Path(folder)
        if args.database == "postgresql" and not pg_urls:
            raise SystemExit("PostgreSQL is not reachable")
        url = pg_urls[0] if pg_urls else f"sqlite:///{data / 'alignscope.db'}"
        started, arrived = measure(data, url, args)
    latencies = [(arrived[step][0] - t) * 1000.0 for step, t in started.items() if step in arrived]
    report = {
        "bench": "live",
        "points": len(started),
        "received": len(latencies),
        "missing": len(started) - len(latencies),
        "duplicates": sum(len(times) - 1 for times in arrived.values()),
        "database": args.database,
        "rate_per_s": args.rate,
        "batch": args.batch,
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
        "target_p95_ms": TARGET_P95_MS,
        "p95_vs_target": round(percentile(latencies, 0.95) / TARGET_P95_MS, 3),
    }
    print(json.dumps(report, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
