"""Workers report themselves: the embedded ``alignscope serve`` worker (a real Celery worker process)
appears on /api/workers with its queues, pid and free memory, names the run it trains, is marked
stopped when it shuts down; a device: cuda run is refused at submit while its only live worker has
no CUDA, and one that reaches it anyway (queued behind the API's back) stays queued, waiting for a
worker with CUDA, instead of failing."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from backend.storage import runs
from backend.storage.db import make_engine
from tests.integration.conftest import Api, ProcessKeeper, free_port, tiny_config, wait_for

pytestmark = pytest.mark.slow


def test_the_embedded_worker_reports_itself_its_run_and_its_stop(keeper: ProcessKeeper, data_dir: Path):
    port = free_port()
    serve = keeper.serve(port, ALIGNSCOPE_RESEND_AFTER_S="1", ALIGNSCOPE_RECONCILE_EVERY_S="1")
    api = Api(port)

    def live() -> list[dict]:
        return [w for w in api.client.get("/workers").json() if w["live"]]

    [worker] = wait_for(live, 60, "the worker to report itself")
    assert worker["pid"] != serve.process.pid  # the worker process, not the API's
    assert set(worker["queues"]) == {"celery", "gpu"} and worker["cuda"] is None
    assert worker["free_memory_bytes"] > 0 and worker["state"] == "idle"

    refused = api.client.post("/runs", json=tiny_config("device=cuda"))
    assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "device"

    run_id = api.submit(tiny_config("optim.max_steps=400"))
    api.wait_step(run_id, 1, 120)
    held = wait_for(
        lambda: (w := live()) and w[0]["run_id"] == run_id and w[0], 30, "the worker to name its run"
    )
    assert held["state"] == "busy"
    api.stop(run_id)
    api.wait(run_id, ("stopped",), 120)

    engine = make_engine(f"sqlite:///{data_dir / 'alignscope.db'}")
    with engine.begin() as conn:  # a CUDA run queued behind the API's back (or before the check)
        cuda_run = runs.create_run(conn, json.dumps(tiny_config("device=cuda")), "cuda", None, None)
    engine.dispose()
    wait_for(lambda: "left queued for another worker" in serve.output(), 60, "the worker to decline it")
    time.sleep(2)
    shown = api.run(cuda_run)
    assert (shown["status"], shown["error"], shown["waiting_for"]) == ("queued", None, "a worker with CUDA")

    assert serve.stop(signal.SIGINT, timeout=60) == 0
    with make_engine(f"sqlite:///{data_dir / 'alignscope.db'}").begin() as conn:
        states = [row[0] for row in conn.exec_driver_sql("SELECT state FROM workers")]
    assert states == ["stopped"]
