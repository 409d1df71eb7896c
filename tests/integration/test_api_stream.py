"""The SSE streams: points with seq ids, resume by Last-Event-ID or ?after= with no gap and no
duplicate, status, pairs and deleted events; one test against a real uvicorn process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from sqlalchemy import select

from backend.storage import metrics, runs
from backend.storage.db import init_db
from backend.storage.tables import metric_points, metric_series
from contracts.events import MetricPoint
from tests.integration.api_support import (
    claim,
    engine_of,
    new_run,
    pair_record,
    read_stream,
    sse_events,
    write_pairs,
    write_points,
)

pytest_plugins = ("tests.integration.api_fixtures",)


def _db_series(client, run_id: str) -> list[tuple[str, int, float]]:
    mp, ms = metric_points.c, metric_series.c
    points = select(ms.key, mp.step, mp.value).join_from(metric_points, metric_series, ms.id == mp.series_id)
    stmt = points.where(ms.run_id == run_id).order_by(mp.seq)
    with engine_of(client).connect() as conn:
        return [tuple(row) for row in conn.execute(stmt)]


def _points(events: list[dict]) -> list[tuple[str, int, float]]:
    return [
        (p["key"], p["step"], p["value"])
        for e in events
        if e["event"] == "points"
        for p in e["data"]["points"]
    ]


def test_run_stream_replays_points_in_seq_batches_then_status(client):
    run_id = new_run(client)["id"]
    claim(client, run_id)
    write_points(client, run_id, {"train/loss": [float(i) for i in range(2500)]})
    events = read_stream(client, f"/api/runs/{run_id}/stream?after=0&until_idle_s=0.2")
    points = [e for e in events if e["event"] == "points"]
    assert [e["id"] for e in points] == ["1000", "2000", "2500"]  # one event per 1000-point poll
    assert _points(events) == _db_series(client, run_id)
    status = [e for e in events if e["event"] == "status"]
    assert [(s["data"]["id"], s["data"]["status"]) for s in status] == [(run_id, "running")]


def test_reconnect_with_last_event_id_has_no_gap_and_no_duplicate(client):
    run_id = new_run(client)["id"]
    claim(client, run_id)
    write_points(client, run_id, {"train/loss": [0.0] * 1500})
    first = read_stream(client, f"/api/runs/{run_id}/stream?after=0&until_idle_s=0.2")
    received = [e for e in first if e["event"] == "points"][:1]  # the client dropped after event 1
    writer = threading.Thread(target=_write_slowly, args=(client, run_id, 1500, 10))
    writer.start()
    second = read_stream(
        client, f"/api/runs/{run_id}/stream?until_idle_s=0.4", headers={"Last-Event-ID": received[-1]["id"]}
    )
    writer.join()
    assert _points(received) + _points(second) == _db_series(client, run_id)
    assert len(_db_series(client, run_id)) == 1500 + 10 * 3


def _write_slowly(client, run_id: str, first_step: int, batches: int) -> None:
    for batch in range(batches):
        write_points(client, run_id, {"train/loss": [1.0, float("nan"), 3.0]}, first_step + 3 * batch)
        time.sleep(0.02)


def test_after_query_and_header_precedence(client):
    run_id = new_run(client)["id"]
    claim(client, run_id)
    write_points(client, run_id, {"a": [1.0, 2.0, 3.0]})
    after_two = read_stream(client, f"/api/runs/{run_id}/stream?after=2&until_idle_s=0.1")
    assert _points(after_two) == [("a", 2, 3.0)]
    header_wins = read_stream(
        client, f"/api/runs/{run_id}/stream?after=0&until_idle_s=0.1", headers={"Last-Event-ID": "1"}
    )
    assert _points(header_wins) == [("a", 1, 2.0), ("a", 2, 3.0)]
    live_only = read_stream(client, f"/api/runs/{run_id}/stream?until_idle_s=0.1")
    assert _points(live_only) == []


def test_all_runs_stream_cuts_batches_per_run_in_seq_order(client):
    first, second = new_run(client)["id"], new_run(client)["id"]
    claim(client, first)
    claim(client, second)
    write_points(client, first, {"a": [1.0]})
    write_points(client, second, {"a": [2.0]})
    write_points(client, first, {"b": [3.0]})
    events = read_stream(client, "/api/stream?after=0&until_idle_s=0.1")
    points = [(e["id"], e["data"]["run_id"], _points([e])) for e in events if e["event"] == "points"]
    assert points == [
        ("1", first, [("a", 0, 1.0)]),
        ("2", second, [("a", 0, 2.0)]),
        ("3", first, [("b", 0, 3.0)]),
    ]


def test_status_pairs_and_deleted_events(client):
    run_id = new_run(client)["id"]
    result: dict[str, list] = {}
    reader = threading.Thread(
        target=lambda: result.setdefault("events", read_stream(client, "/api/stream?until_idle_s=0.5"))
    )
    reader.start()
    time.sleep(0.2)
    claim(client, run_id)
    time.sleep(0.1)
    write_pairs(client, run_id, [pair_record(4, "p1", 1.0, True), pair_record(4, "p2", 1.0, False)])
    time.sleep(0.1)
    with engine_of(client).begin() as conn:
        runs.finish_run(conn, run_id, 1, "succeeded")
    time.sleep(0.1)
    assert client.delete(f"/api/runs/{run_id}").status_code == 204
    reader.join()
    kinds = [(e["event"], e["data"].get("status")) for e in result["events"]]
    assert kinds == [("status", "running"), ("pairs", None), ("status", "succeeded"), ("deleted", None)]
    assert result["events"][1]["data"] == {"run_id": run_id, "step": 4}


def test_heartbeat_comment_when_idle(client):
    run_id = new_run(client)["id"]
    with client.stream("GET", f"/api/runs/{run_id}/stream?until_idle_s=0.5") as reply:
        body = reply.read().decode()
    assert body.startswith("retry: 2000\n\n")
    assert ": keep-alive\n\n" in body  # heartbeat_s is 0.2 in the test options


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_real_uvicorn_stream_resumes_after_a_dropped_connection(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "ALIGNSCOPE_DATA_DIR": str(data)}
    engine = init_db(f"sqlite:///{data / 'alignscope.db'}")
    with engine.begin() as conn:
        run_id = runs.create_run(conn, '{"name": "r"}', "r", None, None)
        runs.claim_run(conn, run_id, 1)
    port = _free_port()
    run = f"uvicorn.run(a.create_app(), port={port}, log_level='warning', timeout_graceful_shutdown=2)"
    code = f"import uvicorn, backend.api as a; {run}"
    server = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base)

        def write(step: int) -> None:
            with engine.begin() as conn:
                metrics.insert_points(conn, run_id, 1, [MetricPoint("k", step, float(step), time.time())])

        for step in range(3):
            write(step)
        with httpx.stream("GET", f"{base}/api/runs/{run_id}/stream?after=0", timeout=10) as reply:
            first = _first_points_event(reply)
        for step in range(3, 6):
            write(step)
        url = f"{base}/api/runs/{run_id}/stream?until_idle_s=0.5"
        rest = sse_events(httpx.get(url, headers={"Last-Event-ID": first["id"]}, timeout=10).text)
        steps = [p[1] for p in _points([first, *rest])]
        assert steps == [0, 1, 2, 3, 4, 5]
    finally:
        server.terminate()
        server.wait(timeout=10)
        engine.dispose()


def _wait_healthy(base: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("uvicorn did not start")


def _first_points_event(reply: httpx.Response) -> dict:
    buffer = ""
    for chunk in reply.iter_text():
        buffer += chunk
        for event in sse_events(buffer):
            if event["event"] == "points":
                return event
    raise AssertionError("no points event")
