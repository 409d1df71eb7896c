"""A real TRL DPOTrainer (examples/trl_dpo.py, tiny GPT-NeoX, CPU) streams into a real
``alignscope serve`` with a token: its per-pair records reproduce TRL's own logged means; β-DPO
inside TRL is the engine's calibrator, once per optimizer step with scope batch; a stop in the
dashboard stops TRL; a killed client's run fails instead of staying "running"."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from backend.storage.runs import CLIENT_LOST
from contracts import metric_keys as mk
from contracts.config import ConstructedDataSpec
from tests.integration.conftest import ProcessKeeper, free_port, wait_for
from tests.integration.trl_support import Server, by_step, example, finished, replay_beta_dpo, trl_logs
from worker.engine.data.constructed import constructed_rows

pytestmark = pytest.mark.slow
NATIVE_IDS = {row.pair_id for row in constructed_rows(ConstructedDataSpec(num_pairs=64, seed=0))}
TRL_MEANS = {  # TRL's logged name → the mean over the step's per-pair records
    "rewards/chosen": lambda p, b: b * (p["policy_chosen_logp"] - p["reference_chosen_logp"]),
    "rewards/rejected": lambda p, b: b * (p["policy_rejected_logp"] - p["reference_rejected_logp"]),
    "rewards/margins": lambda p, b: b * (p["discrepancy"]),
    "rewards/accuracies": lambda p, b: float(p["discrepancy"] > 0),
    "logps/chosen": lambda p, b: p["policy_chosen_logp"],
    "logps/rejected": lambda p, b: p["policy_rejected_logp"],
}


@pytest.fixture
def server(keeper: ProcessKeeper) -> Server:
    return Server(keeper, free_port(), ALIGNSCOPE_RECONCILE_EVERY_S="1", ALIGNSCOPE_STALE_AFTER_S="6").start()


def test_records_reproduce_trl_means_and_beta_dpo_is_the_engines(
    keeper: ProcessKeeper, server: Server, tmp_path: Path
) -> None:
    dpo = example(keeper, server.url, "--max-steps", "4", "--grad-accum", "2", "--batch-size", "4",
                  history=tmp_path / "dpo.json", name="dpo")  # fmt: skip
    finished(dpo)
    run_id, logs = trl_logs(tmp_path / "dpo.json")
    run = server.get(f"/runs/{run_id}")
    assert (run["status"], run["source"], run["external"], run["step"]) == ("succeeded", "trl", True, 4)
    assert run["config"]["trl"]["gradient_accumulation_steps"] == 2 and run["environment"]["trl"] == "1.16.0"
    pairs = by_step(server.pairs(run_id))
    assert sorted(pairs) == sorted(logs) == [1, 2, 3, 4]
    for step, log in logs.items():
        records = pairs[step]
        assert len(records) == 8 and {r["micro_batch"] for r in records} == {0, 1}
        assert all(r["prompt"] and r["chosen"] and r["rejected"] for r in records)
        assert {r["pair_id"] for r in records} <= NATIVE_IDS  # the ids a native run gives these pairs
        for name, value in TRL_MEANS.items():
            mean = sum(value(r, 0.1) for r in records) / len(records)
            assert mean == pytest.approx(log[name], rel=1e-5, abs=1e-9), (step, name)
    assert server.series(run_id, mk.REWARDS_MARGIN).keys() == {1, 2, 3, 4}
    assert server.series(run_id, mk.SLOPE_CHOSEN) and server.series(run_id, "trl/entropy")
    assert server.series(run_id, mk.TRAIN_LOSS) == pytest.approx({s: log["loss"] for s, log in logs.items()})

    # β-DPO, scope batch (the default) with accumulation: one calibration per step of 2 × 4 pairs
    beta = example(keeper, server.url, "--max-steps", "5", "--batch-size", "4", "--grad-accum", "2",
                   "--beta-dpo", history=tmp_path / "beta.json", name="beta")  # fmt: skip
    finished(beta)
    run_id, logs = trl_logs(tmp_path / "beta.json")
    assert server.get(f"/runs/{run_id}")["config"]["beta_dpo"]["scope"] == "batch"  # the run header's
    replay_beta_dpo(by_step(server.pairs(run_id)), logs)


def test_stop_from_dashboard_and_killed_client(keeper: ProcessKeeper, server: Server, tmp_path: Path) -> None:
    stopped = example(keeper, server.url, "--max-steps", "400", history=tmp_path / "s.json", name="stopped")
    killed = example(keeper, server.url, "--max-steps", "400", "--run-name", "killed",
                     history=tmp_path / "k.json", name="killed")  # fmt: skip
    runs = wait_for(
        lambda: len(r := server.get("/runs", status="running")) == 2 and r, 240, "two running runs"
    )
    ids = {r["name"]: r["id"] for r in runs}
    wait_for(lambda: all((server.get(f"/runs/{i}")["step"] or 0) >= 2 for i in ids.values()), 240, "steps")

    killed.process.send_signal(signal.SIGKILL)
    response = server.client.post(f"/runs/{ids['trl-dpo-example']}/stop")
    assert response.status_code == 200, response.text
    finished(stopped, 120)
    run = server.get(f"/runs/{ids['trl-dpo-example']}")
    assert run["status"] == "stopped" and run["step"] < 400
    _, logs = trl_logs(tmp_path / "s.json")
    assert max(logs) == run["step"]  # TRL stopped at the step the dashboard last heard of

    lost = wait_for(lambda: (r := server.get(f"/runs/{ids['killed']}"))["status"] != "running" and r, 60,
                    "the killed client's run to end")  # fmt: skip
    assert (lost["status"], lost["error"]) == ("failed", CLIENT_LOST)
