"""The training loop on a tiny GPT-NeoX on CPU: learning, exact keys, determinism, accumulation,
stop/resume, non-finite losses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from backend.config_files import apply_overrides, load_preset, validate
from contracts import metric_keys as mk
from contracts.config import RunConfig
from worker.engine.loop import train
from worker.engine.model import families
from worker.engine.sinks import ListSink

SMALL = [
    "model.tiny.hidden_size=32",
    "model.tiny.intermediate_size=64",
    "data.constructed.num_pairs=128",
    "data.max_length=48",
    "data.max_prompt_length=24",
    "data.eval_fraction=0",
    "optim.warmup_steps=0",
    "checkpoint_every=0",
    "evaluation.at_end=false",  # the tiny-beta-dpo preset evaluates at the end; these tests train only
]


def small(preset: str, *overrides: str) -> RunConfig:
    """A preset shrunk for tests, with extra dotted overrides."""
    return validate(apply_overrides(load_preset(preset), [*SMALL, *overrides]))


def values(sink: ListSink, key: str) -> list[float]:
    return [v for _, v in sink.series(key)]


LM_KEYS = {
    mk.TRAIN_LOSS, mk.TRAIN_BETA, mk.TRAIN_LR, mk.TRAIN_GRAD_NORM, mk.TRAIN_SFT_LOSS,
    mk.TRAIN_EXAMPLES_PER_SECOND, mk.REWARDS_CHOSEN, mk.REWARDS_REJECTED, mk.REWARDS_MARGIN,
    mk.REWARDS_ACCURACY, mk.LOGPS_CHOSEN, mk.LOGPS_REJECTED, mk.LOGRATIO_CHOSEN_PER_TOKEN,
    mk.LOGRATIO_REJECTED_PER_TOKEN, mk.CHOSEN_BELOW_REFERENCE, mk.GRAD_LOG_RATIO, mk.GRAD_WEIGHT,
    mk.PAIR_MASS, mk.PAIR_MASS_PER_TOKEN, mk.BDPO_KEPT_FRACTION, mk.SLOPE_CHOSEN, mk.SLOPE_REJECTED,
    mk.D1_RATE, mk.REJECTED_SHARE, mk.CHOSEN_DRAWDOWN, mk.PROGRESS,
}  # fmt: skip
BDPO_KEYS = {
    mk.BDPO_M0, mk.BDPO_SIGMA, mk.BDPO_M_BAR_KEPT, mk.BDPO_M_BAR_ALL, mk.BDPO_FILTERED_HIGH,
    mk.BDPO_FILTERED_LOW, mk.TRAIN_LOSS_ALL_PAIRS,
}  # fmt: skip


def test_dpo_learns_on_the_tiny_model() -> None:
    sink = ListSink()
    summary = train(small("tiny-dpo", "optim.max_steps=40", "optim.lr=0.002"), sink)
    assert summary.status == "succeeded" and summary.steps == 40
    loss, accuracy = values(sink, mk.TRAIN_LOSS), values(sink, mk.REWARDS_ACCURACY)
    assert loss[0] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at step 1: −log σ(0)
    assert sum(loss[-10:]) / 10 < loss[0] - 0.1
    assert sum(accuracy[-10:]) / 10 > 0.7
    assert values(sink, mk.REWARDS_MARGIN)[-1] > 0


def test_exact_metric_keys_at_each_log_step() -> None:
    sink = ListSink()
    train(small("tiny-beta-dpo", "optim.max_steps=4", "log_every=2"), sink)
    assert sorted({p.step for p in sink.point_list}) == [2, 4]
    for step in (2, 4):
        assert sink.keys_at(step) == LM_KEYS | BDPO_KEYS
    dpo = ListSink()
    train(small("tiny-dpo", "optim.max_steps=2"), dpo)
    assert dpo.keys_at(2) == LM_KEYS


def test_same_seed_same_trajectory_and_other_seed_differs() -> None:
    runs = []
    for seed in (3, 3, 4):
        sink = ListSink()
        train(small("tiny-beta-dpo", "optim.max_steps=6", f"seed={seed}"), sink)
        runs.append(
            [(p.key, p.step, p.value) for p in sink.point_list if p.key != mk.TRAIN_EXAMPLES_PER_SECOND]
        )
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_gradient_accumulation_matches_one_big_micro_batch() -> None:
    one, two = ListSink(), ListSink()
    train(small("tiny-dpo", "optim.max_steps=5", "optim.batch_size=16", "optim.micro_batch_size=16"), one)
    train(small("tiny-dpo", "optim.max_steps=5", "optim.batch_size=16", "optim.micro_batch_size=8"), two)
    for key in (mk.TRAIN_LOSS, mk.TRAIN_GRAD_NORM, mk.REWARDS_MARGIN, mk.LOGPS_CHOSEN):
        assert values(one, key) == pytest.approx(values(two, key), rel=1e-4, abs=1e-5)


def test_stop_then_resume_equals_one_run(tmp_path: Path) -> None:
    config = small("tiny-beta-dpo", "optim.max_steps=8")
    whole = ListSink()
    train(config, whole)
    first, second = ListSink(), ListSink()
    steps_seen: list[int] = []

    def stop_after_three() -> bool:
        steps_seen.append(1)
        return len(steps_seen) >= 3

    stopped = train(config, first, should_stop=stop_after_three, checkpoint_dir=tmp_path / "ckpt")
    assert stopped.status == "stopped" and stopped.steps == 3
    resumed = train(config, second, checkpoint_dir=tmp_path / "ckpt")
    assert resumed.status == "succeeded" and resumed.steps == 8

    def table(sink: ListSink) -> dict[tuple[str, int], float]:
        return {(p.key, p.step): p.value for p in sink.point_list if p.key != mk.TRAIN_EXAMPLES_PER_SECOND}

    assert {**table(first), **table(second)} == table(whole)
    assert [r for r in first.pair_records + second.pair_records] == whole.pair_records


def test_non_finite_loss_fails_the_run_and_keeps_its_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: from the 3rd forward on, the policy's last MLP outputs NaN."""
    real_build = families.build_family
    calls = {"n": 0}

    def poisoned(config: RunConfig, world: object) -> families.Family:
        family = real_build(config, world)  # type: ignore[arg-type]

        def hook(module: torch.nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            return output * float("nan") if calls["n"] >= 3 else output

        family.policy.gpt_neox.layers[-1].mlp.dense_4h_to_h.register_forward_hook(hook)
        return family

    monkeypatch.setattr("worker.engine.loop.build_family", poisoned)
    sink = ListSink()
    summary = train(small("tiny-dpo", "optim.max_steps=10", "optim.micro_batch_size=16"), sink)
    assert summary.status == "failed" and summary.steps == 2
    assert "non-finite" in (summary.error or "")
    loss = values(sink, mk.TRAIN_LOSS)
    assert len(loss) == 3 and all(math.isfinite(v) for v in loss[:2]) and math.isnan(loss[2])


def test_each_checkpoint_is_reported_to_the_sink_as_it_is_written(tmp_path: Path) -> None:
    """The sink hears of every checkpoint at once (DbSink records it on the run row), so a trainer
    killed right after it resumes from it."""
    config = small("tiny-dpo", "optim.max_steps=6", "checkpoint_every=2")
    sink = ListSink()
    train(config, sink, checkpoint_dir=tmp_path / "ckpt")
    folder = str(tmp_path / "ckpt")
    assert [step for path, step in sink.checkpoints if path == folder][:3] == [2, 4, 6]
    assert (tmp_path / "ckpt").is_dir()
