"""The API on a real PostgreSQL server (a fresh schema per test): create, metrics with NaN, stream
resume, pairs, stop and delete. Server: postgresql+psycopg://postgres@127.0.0.1:5432/test."""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient

from backend.api import create_app
from backend.api.options import ApiOptions
from backend.queue import RecordingEnqueuer
from backend.settings import Settings
from backend.storage import metrics, runs
from contracts.events import MetricPoint
from tests.integration.api_support import BASE_URL, TINY, pair_record, read_stream, write_pairs

pytestmark = pytest.mark.postgres
SERVER = "postgresql://postgres@127.0.0.1:5432/test"

pytest_plugins = ("tests.integration.api_fixtures",)


@pytest.fixture
def pg_client(tmp_path):
    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    name = f"as_api_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {name}")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options={quote(f'-csearch_path={name}')}"
    settings = Settings(data_dir=tmp_path, database_url=url)
    app = create_app(
        settings, enqueuer=RecordingEnqueuer(), options=ApiOptions(poll_s=0.02), frontend_dir=None
    )
    try:
        with TestClient(app, base_url=BASE_URL) as client:
            yield client
    finally:
        app.state.context.engine.dispose()
        admin.execute(f"DROP SCHEMA {name} CASCADE")
        admin.close()


def test_api_round_trip_on_postgresql(pg_client):
    client = pg_client
    run_id = client.post("/api/runs", json=TINY).json()["id"]
    engine = client.app.state.context.engine
    with engine.begin() as conn:
        runs.claim_run(conn, run_id, 1)
        points = [
            MetricPoint("train/loss", step, v, time.time())
            for step, v in enumerate([0.5, float("nan"), 0.25])
        ]
        metrics.insert_points(conn, run_id, 1, points)
    write_pairs(client, run_id, [pair_record(0, "p1", 2.0, False)])
    body = client.get(f"/api/runs/{run_id}/metrics").json()
    assert body["series"] == {"train/loss": {"steps": [0, 1, 2], "values": [0.5, None, 0.25]}}
    events = read_stream(client, f"/api/runs/{run_id}/stream?until_idle_s=0.2", {"Last-Event-ID": "1"})
    replayed = [
        (p["step"], p["value"]) for e in events if e["event"] == "points" for p in e["data"]["points"]
    ]
    assert replayed == [(1, None), (2, 0.25)]
    assert client.get(f"/api/runs/{run_id}/pairs").json()[0]["z"] == 4.0  # (2.0 − 0) / 0.5
    assert client.post(f"/api/runs/{run_id}/stop").json()["stop_requested"] is True
    with engine.begin() as conn:
        runs.finish_run(conn, run_id, 1, "stopped")
    assert client.delete(f"/api/runs/{run_id}").status_code == 204
    assert client.get("/api/runs").json() == []
