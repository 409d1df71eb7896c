"""``alignscope worker --gpus N``: a run that asks for N processes is trained under torchrun by the
real worker (Redis + PostgreSQL), rank 0 alone writing the store; a run asking for more GPUs than the
worker offers fails with the reason, before any process starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.integration.conftest import FINAL, Api, ProcessKeeper, loss_steps, tiny_config

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


def test_a_two_process_run_trains_under_torchrun_with_ddp(
    scaleout: ProcessKeeper, scaleout_api: Api, pg_engine: Engine, data_dir: Path
) -> None:
    scaleout.worker("--gpus", "2")
    run_id = scaleout_api.submit(tiny_config("num_processes=2", "device=cpu", "distributed.strategy=ddp"))
    run = scaleout_api.wait(run_id, FINAL, 240)
    assert (run["status"], run["step"]) == ("succeeded", 8), run["error"]
    assert loss_steps(pg_engine, run_id) == list(range(1, 9))  # each step once: rank 0 writes alone
    log = (data_dir / "logs" / run_id / "attempt-1.log").read_text()
    assert "torch.distributed" in log or "OMP_NUM_THREADS" in log  # torchrun's banner: 2 processes


def test_a_run_asking_for_more_gpus_than_the_worker_offers_fails_with_the_reason(
    scaleout: ProcessKeeper, scaleout_api: Api, data_dir: Path
) -> None:
    scaleout.worker("--gpus", "1")
    # device auto: no CUDA worker is live here, and a device: cuda run would wait queued for one (19.6)
    run_id = scaleout_api.submit(tiny_config("num_processes=2", "device=auto"))
    run = scaleout_api.wait(run_id, FINAL, 60)
    assert run["status"] == "failed"
    assert "asks for 2 processes but this worker offers 1 GPUs" in run["error"]
    assert not (data_dir / "logs" / run_id).exists()  # no trainer was started
