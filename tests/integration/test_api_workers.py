"""Workers and placement: workers' own reports are listed with liveness; a run no live worker can
take (device: cuda, live workers, none with CUDA) is refused at submit naming the fix; a queued run
says what it waits for; Resume is offered only where it can work."""

from __future__ import annotations

import time

from backend.storage import runs, workers
from tests.integration.api_support import claim, engine_of, new_run

pytest_plugins = ("tests.integration.api_fixtures",)


def _report(client, worker_id: str, cuda: str | None, seen: float | None = None, run_id=None) -> None:
    values = {
        "id": worker_id, "host": worker_id.split(":")[0], "pid": 1, "queues": ["celery", "gpu"],
        "gpus": 1 if cuda else 0, "cuda": cuda, "free_memory_bytes": 8 << 30, "run_id": run_id,
        "devices": [{"name": "H100", "total_bytes": 80 << 30, "free_bytes": 79 << 30}] if cuda else [],
        "state": "busy" if run_id else "idle", "started_at": time.time() - 60,
    }  # fmt: skip
    with engine_of(client).begin() as conn:
        workers.report(conn, values, now=seen)


def test_workers_are_listed_live_first_with_what_they_offer(client):
    _report(client, "old:7", None, seen=time.time() - 3600)
    _report(client, "gpu-box:42", "12.8", run_id="r" * 32)
    listed = client.get("/api/workers").json()
    assert [(w["id"], w["live"]) for w in listed] == [("gpu-box:42", True), ("old:7", False)]
    box = listed[0]
    assert (box["cuda"], box["gpus"], box["queues"], box["run_id"], box["state"]) == (
        "12.8",
        1,
        ["celery", "gpu"],
        "r" * 32,
        "busy",
    )
    assert box["devices"][0]["name"] == "H100" and box["free_memory_bytes"] == 8 << 30
    with engine_of(client).begin() as conn:
        workers.mark_stopped(conn, "gpu-box:42")
    assert [w["live"] for w in client.get("/api/workers").json()] == [False, False]


def test_cuda_run_is_refused_when_live_workers_have_no_cuda(client, queue):
    _report(client, "laptop:1", None)
    reply = client.post("/api/runs", json={"device": "cuda"})
    assert reply.status_code == 422
    [item] = reply.json()["detail"]
    assert item["field"] == "device"
    assert "no live worker has CUDA" in item["msg"] and "CPU only: laptop" in item["msg"]
    assert "device: auto" in item["msg"] and "alignscope worker" in item["msg"]
    assert client.get("/api/runs").json() == [] and queue.sent == []
    assert client.post("/api/runs", json={"device": "auto"}).status_code == 201  # auto is placeable


def test_cuda_run_is_accepted_when_a_live_worker_has_cuda(client):
    _report(client, "laptop:1", None)
    _report(client, "gpu-box:2", "12.8")
    assert client.post("/api/runs", json={"device": "cuda"}).status_code == 201


def test_with_no_live_worker_a_cuda_run_waits_and_says_for_what(client):
    _report(client, "gone:3", "12.8", seen=time.time() - 3600)  # its CUDA worker went away
    run = new_run(client, device="cuda")
    assert client.get(f"/api/runs/{run['id']}").json()["waiting_for"] == "a worker with CUDA"
    plain = new_run(client)
    assert client.get(f"/api/runs/{plain['id']}").json()["waiting_for"] == "a worker"
    _report(client, "cpu:4", None)
    listed = {r["id"]: r["waiting_for"] for r in client.get("/api/runs").json()}
    assert listed == {run["id"]: "a worker with CUDA", plain["id"]: None}


def _stopped_with_checkpoint(client, settings) -> dict:
    run = new_run(client)
    claim(client, run["id"])
    folder = settings.data_dir / "checkpoints" / run["id"]
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "state.pt").write_bytes(b"state")
    with engine_of(client).begin() as conn:
        runs.finish_run(conn, run["id"], 1, "stopped")
    return run


def test_resume_is_offered_only_where_it_can_work(client, settings):
    without = new_run(client)
    client.post(f"/api/runs/{without['id']}/stop")
    shown = client.get(f"/api/runs/{without['id']}").json()
    assert shown["resumable"] is False and "no checkpoint" in shown["resume_blocked"]

    parent = _stopped_with_checkpoint(client, settings)
    assert client.get(f"/api/runs/{parent['id']}").json()["resumable"] is True
    clone = client.post(f"/api/runs/{parent['id']}/clone", json={"overrides": {"optim.lr": 1e-4}})
    assert clone.status_code == 201  # a clone is not a resume
    assert client.get(f"/api/runs/{parent['id']}").json()["resumable"] is True
    child = client.post(f"/api/runs/{parent['id']}/resume").json()

    again = client.get(f"/api/runs/{parent['id']}").json()
    assert again["resumable"] is False and child["id"] in again["resume_blocked"]
    refused = client.post(f"/api/runs/{parent['id']}/resume")
    assert refused.status_code == 409 and "already resumed as run" in refused.json()["detail"]
    listed = {r["id"]: r["resumable"] for r in client.get("/api/runs").json()}
    assert listed[parent["id"]] is False and listed[child["id"]] is False  # the child is queued
