"""The ingest API on a real SQLite database: idempotent open/batch/finish, refusals that name the
field, external runs refusing resume and clone, and the liveness rule for a lost client."""

from __future__ import annotations

import json
import math
import time
import uuid

from sqlalchemy import select

from backend.storage import runs
from backend.storage.tables import pair_records
from backend.storage.tables import runs as runs_table
from tests.integration.api_support import engine_of, new_run

pytest_plugins = ("tests.integration.api_fixtures",)
PAIR = [1, 0, "p1", -1.0, -2.0, -1.1, -1.9, 3, 4, 0.2, 1.0, True, 0.1, math.nan, math.nan]
BATCH = {"points": [["train/loss", 1, 0.69, 1.0], ["train/beta", 1, math.inf, 1.0]], "pairs": [PAIR],
         "texts": [["p1", "prompt", "chosen", "rejected"]], "step": 1, "progress": 0.5}  # fmt: skip


def opened(client) -> str:
    run_id = uuid.uuid4().hex
    body = {
        "name": "ext",
        "source": "trl",
        "config": {"loss": {"kind": "dpo", "beta": 0.1}, "trl": {"beta": 0.1}},
    }
    for _ in range(2):  # a re-sent open finds the same run
        reply = client.put(f"/api/ingest/runs/{run_id}", json=body)
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "running"
    return run_id


def post(client, run_id: str, path: str, body: object) -> dict:
    reply = client.post(
        f"/api/ingest/runs/{run_id}/{path}",
        content=json.dumps(body),
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_retried_batch_adds_nothing_and_the_run_reads_like_a_native_one(client):
    run_id = opened(client)
    first = post(client, run_id, "batch", BATCH)
    again = post(client, run_id, "batch", BATCH)
    assert (first["points"], first["pairs"], first["texts"]) == (2, 1, 1)
    assert (again["points"], again["pairs"], again["texts"]) == (0, 0, 0)
    run = client.get(f"/api/runs/{run_id}").json()
    assert (run["external"], run["source"], run["loss_kind"], run["beta0"], run["step"]) == (
        True,
        "trl",
        "dpo",
        0.1,
        1,
    )
    pairs = client.get(f"/api/runs/{run_id}/pairs").json()
    assert len(pairs) == 1 and pairs[0]["prompt"] == "prompt" and pairs[0]["m0"] is None
    assert client.get(f"/api/runs/{run_id}/metrics", params={"key": "train/beta"}).json()["series"][
        "train/beta"
    ]["values"] == [None]
    assert post(client, run_id, "finish", {"status": "succeeded"})["status"] == "succeeded"
    assert post(client, run_id, "finish", {"status": "failed", "error": "late"})["status"] == "succeeded"


def test_stop_reaches_the_client_and_resume_clone_are_refused_with_the_reason(client):
    run_id = opened(client)
    assert client.post(f"/api/runs/{run_id}/stop").status_code == 200
    assert post(client, run_id, "batch", {})["stop_requested"] is True
    post(client, run_id, "finish", {"status": "stopped"})
    for action, body in (("resume", None), ("clone", {"overrides": {}})):
        reply = client.post(f"/api/runs/{run_id}/{action}", json=body)
        assert reply.status_code == 409 and "external trainer (trl)" in reply.json()["detail"], reply.text


def test_bad_messages_are_refused_naming_the_field(client):
    run_id = opened(client)
    bad_pair = [*PAIR[:7], -3, *PAIR[8:]]  # a negative token count
    headers = {"content-type": "application/json"}
    reply = client.post(
        f"/api/ingest/runs/{run_id}/batch", content=json.dumps({"pairs": [bad_pair]}), headers=headers
    )
    assert reply.status_code == 422 and reply.json()["detail"][0]["field"] == "pairs.0.7"
    reply = client.post(
        f"/api/ingest/runs/{run_id}/batch", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422 and "line 1 column 2" in reply.json()["detail"][0]["msg"]
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["a"] = {}
        node = node["a"]
    reply = client.put(f"/api/ingest/runs/{uuid.uuid4().hex}", json={"name": "x", "config": deep})
    assert reply.status_code == 422 and reply.json()["detail"][0]["field"] == "config"
    assert client.put("/api/ingest/runs/not-an-id", json={"name": "x"}).status_code == 422
    assert client.post(f"/api/ingest/runs/{uuid.uuid4().hex}/batch", json={}).status_code == 404
    native = new_run(client)["id"]
    reply = client.put(f"/api/ingest/runs/{native}", json={"name": "x"})
    assert reply.status_code == 409 and "trained by AlignScope itself" in reply.json()["detail"]


def test_a_lost_client_fails_its_run_and_a_late_batch_or_sync_revives_and_ends_it(client):
    run_id = opened(client)
    engine = engine_of(client)
    with engine.begin() as conn:
        assert runs.requeue_stale(conn, stale_after_s=10, max_attempts=3, now=time.time() + 60) == []
        row = conn.execute(
            select(runs_table.c.status, runs_table.c.error).where(runs_table.c.id == run_id)
        ).one()
    assert (row.status, row.error) == ("failed", runs.CLIENT_LOST)
    assert post(client, run_id, "batch", BATCH)["status"] == "running"
    assert post(client, run_id, "finish", {"status": "succeeded"})["status"] == "succeeded"
    with engine.connect() as conn:
        assert len(conn.execute(select(pair_records).where(pair_records.c.run_id == run_id)).all()) == 1


def test_a_step_of_many_pairs_is_one_batch_beyond_the_general_body_cap(client):
    run_id = opened(client)
    rows = [[1, 0, f"p{i}", -1.0, -2.0, -1.1, -1.9, 3, 4, 0.2, 1.0, True, 0.1, 0.0, 0.0] for i in range(5000)]
    body = json.dumps({"pairs": rows, "texts": [[f"p{i}", "x" * 100, "y", "z"] for i in range(5000)]})
    assert len(body) > 256 * 1024  # over the body budget of the other routes
    assert post(client, run_id, "batch", json.loads(body))["pairs"] == 5000
