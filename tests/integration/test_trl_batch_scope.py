"""β-DPO ``scope: batch`` inside a real TRL DPOTrainer (examples/trl_dpo.py's tiny GPT-NeoX, CPU,
offline spool): 8 pairs × 2 accumulation steps and 16 × 1 train the same run — the same β, M0, σ,
kept pairs, loss, gradient norm and gradients at every step, with plain SGD at a learning rate that
moves the log-probs by about a nat in 6 steps (Adam would hide a mis-scaled gradient) — while scope
micro_batch (the authors' code) does not; and a fresh calibrator replays the records exactly
(docs/decisions/0041).

The model is float64: in float32, TRL alone (plain DPO) already gives 8 × 2 and 16 × 1 gradients
that differ by 1.6e-3 relative (the DPO gradient is a difference of nearly equal chosen and rejected
gradients, and the batch shapes round differently), which this learning rate would amplify past any
tolerance; in float64 they differ by 1e-7."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from tests.integration.trl_support import by_step, example_module, replay_beta_dpo, spooled_pairs

pytestmark = pytest.mark.slow
STEPS = 6
FLOATS = ("policy_chosen_logp", "policy_rejected_logp", "reference_chosen_logp", "reference_rejected_logp",
          "discrepancy", "filter_weight", "beta", "m0", "sigma")  # fmt: skip


class Gradients(TrainerCallback):
    """The accumulated gradient of every parameter just before each optimizer step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []
        self.model: torch.nn.Module | None = None

    def on_pre_optimizer_step(self, args, state, control, **kwargs) -> None:
        assert self.model is not None
        self.steps.append({n: p.grad.detach().clone() for n, p in self.model.named_parameters()})


def train(
    folder: Path, batch: int, accumulation: int, scope: str, *more: str
) -> tuple[list[dict], dict[int, dict], Gradients]:
    """(pair records, step → TRL's logs, gradients) of a β-DPO run over global batches of 16 (``more``:
    more example flags)."""
    flags = [*more, "--beta-dpo", "--beta-dpo-scope", scope, "--batch-size", str(batch), "--grad-accum",
             str(accumulation), "--max-steps", str(STEPS), "--optim", "sgd", "--lr", "2.0", "--pairs", "96",
             "--dtype", "float64", "--spool-dir", str(folder), "--finish-timeout", "0"]  # fmt: skip
    example = example_module()
    trainer = example.build(example.parse(flags))
    gradients = Gradients()
    gradients.model = trainer.model
    trainer.add_callback(gradients)
    trainer.train()
    logs = {e["step"]: e for e in trainer.state.log_history if "loss" in e}
    return spooled_pairs(folder), logs, gradients


def assert_same_run(a: tuple, b: tuple) -> None:
    (records_a, logs_a, grads_a), (records_b, logs_b, grads_b) = a, b
    assert len(records_a) == len(records_b) == STEPS * 16
    for ra, rb in zip(records_a, records_b, strict=True):
        assert (ra["step"], ra["pair_id"], ra["kept"]) == (rb["step"], rb["pair_id"], rb["kept"])
        for name in FLOATS:
            assert ra[name] == pytest.approx(rb[name], rel=1e-5, abs=1e-6), (ra["step"], name)
    for step in range(1, STEPS + 1):
        for name in ("loss", "grad_norm", "rewards/margins", "logps/chosen"):
            assert logs_a[step][name] == pytest.approx(logs_b[step][name], rel=1e-5, abs=1e-7), (step, name)
    for step_a, step_b in zip(grads_a.steps, grads_b.steps, strict=True):  # ‖g_a − g_b‖ / ‖g_b‖
        difference = sum(float(((grad - step_b[name]) ** 2).sum()) for name, grad in step_a.items())
        size = sum(float((grad**2).sum()) for grad in step_b.values())
        assert (difference / size) ** 0.5 < 1e-5


def test_batch_scope_does_not_depend_on_the_micro_batch_size(tmp_path: Path) -> None:
    accumulated = train(tmp_path / "8x2", 8, 2, "batch")
    whole = train(tmp_path / "16x1", 16, 1, "batch")
    records, logs, _ = accumulated
    assert {r["micro_batch"] for r in records} == {0, 1}
    moved = [r["policy_chosen_logp"] - r["reference_chosen_logp"] for r in records if r["step"] == STEPS]
    assert max(abs(m) for m in moved) > 0.5  # the policy moved by nats: a wrong gradient would show
    assert_same_run(accumulated, whole)
    replay_beta_dpo(by_step(records), logs, "batch")  # one calibration per step, in the recorded order

    authors = train(tmp_path / "8x2-micro", 8, 2, "micro_batch")
    records, logs, _ = authors
    replay_beta_dpo(by_step(records), logs, "micro_batch")  # two calibrations per step
    step_two = [r for r in records if r["step"] == 2]  # (at step 1 the policy is the reference: β = β0)
    assert len({r["beta"] for r in step_two}) == 2  # each micro-batch its own β
    with pytest.raises(AssertionError):
        assert_same_run(authors, whole)


def test_batch_scope_with_trls_precomputed_reference(tmp_path: Path) -> None:
    """With TRL's precompute_ref_log_probs the scoring pass runs the policy only; the run is the same."""
    precomputed = train(tmp_path / "pre", 8, 2, "batch", "--precompute-ref")
    records, logs, _ = precomputed
    replay_beta_dpo(by_step(records), logs, "batch")
    assert_same_run(precomputed, train(tmp_path / "16x1", 16, 1, "batch"))
