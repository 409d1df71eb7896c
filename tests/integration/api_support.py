"""Helpers of the API tests: requests that create runs, and direct storage writes standing in for the
worker (the fixtures are in api_fixtures.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.storage import metrics, pairs, runs
from contracts.events import MetricPoint, PairRecord, PairText

BASE_URL = "http://localhost"
TINY = {"name": "tiny", "optim": {"max_steps": 5, "batch_size": 4, "micro_batch_size": 4}}


def engine_of(client: TestClient) -> Engine:
    return client.app.state.context.engine


def new_run(client: TestClient, **config: object) -> dict:
    reply = client.post("/api/runs", json={**TINY, **config})
    assert reply.status_code == 201, reply.text
    return reply.json()


def claim(client: TestClient, run_id: str) -> None:
    with engine_of(client).begin() as conn:
        assert runs.claim_run(conn, run_id, 1)


def write_points(
    client: TestClient, run_id: str, values: dict[str, Sequence[float]], first_step: int = 0
) -> None:
    """Points key → values at steps first_step, first_step + 1, … (one batch per key)."""
    with engine_of(client).begin() as conn:
        for key, series in values.items():
            batch = [MetricPoint(key, first_step + i, v, time.time()) for i, v in enumerate(series)]
            metrics.insert_points(conn, run_id, 1, batch)


def pair_record(step: int, pair_id: str, discrepancy: float, kept: bool, m0: float = 0.0) -> PairRecord:
    return PairRecord(step, 0, pair_id, -1.0, -2.0, -1.5, -1.5, 3, 4, discrepancy, 1.0, kept, 0.1, m0, 0.5)


def write_pairs(client: TestClient, run_id: str, records: Sequence[PairRecord]) -> None:
    with engine_of(client).begin() as conn:
        pairs.insert_pair_records(conn, run_id, 1, records)
        texts = {r.pair_id: PairText(r.pair_id, f"p-{r.pair_id}", "good", "bad") for r in records}
        pairs.insert_pair_texts(conn, run_id, list(texts.values()))


def sse_events(text: str) -> list[dict]:
    """Parse an SSE body into [{"id", "event", "data"}] (data JSON-decoded); comments are skipped."""
    events = []
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name in ("id", "event", "data"):
                fields[name] = value
        if "event" in fields:
            events.append(
                {"id": fields.get("id"), "event": fields["event"], "data": json.loads(fields["data"])}
            )
    return events


def read_stream(client: TestClient, url: str, headers: dict[str, str] | None = None) -> list[dict]:
    with client.stream("GET", url, headers=headers or {}) as reply:
        assert reply.status_code == 200, reply.read()
        assert reply.headers["content-type"].startswith("text/event-stream")
        return sse_events(reply.read().decode())
