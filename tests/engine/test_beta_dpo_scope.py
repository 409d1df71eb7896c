"""β-DPO calibration scope (SCIENCE.md product decision 6): with ``scope: batch`` one calibration per
optimizer step over the whole batch, so micro_batch_size (a memory knob) does not change β, M0, σ or
the loss; with ``scope: micro_batch`` (the authors' code) it does. Also the honest scalars of product
decision 7: the unmasked loss and the step means of M0/σ."""

from __future__ import annotations

import pytest

from contracts import metric_keys as mk
from worker.engine.loop import train
from worker.engine.sinks import ListSink

from .test_loop import small, values

TRAJECTORY = (mk.TRAIN_BETA, mk.BDPO_M0, mk.BDPO_SIGMA, mk.TRAIN_LOSS, mk.TRAIN_LOSS_ALL_PAIRS,
              mk.BDPO_KEPT_FRACTION, mk.BDPO_M_BAR_KEPT, mk.TRAIN_GRAD_NORM)  # fmt: skip


def run(scope: str, micro_batch: int, steps: int = 8) -> ListSink:
    """tiny-beta-dpo, 128 pairs, 16 per step (8 steps = one epoch, so both micro-batch sizes see the
    same pairs in the same order), lr high enough that β moves."""
    sink = ListSink()
    config = small(
        "tiny-beta-dpo", f"optim.max_steps={steps}", "optim.batch_size=16",
        f"optim.micro_batch_size={micro_batch}", f"beta_dpo.scope={scope}", "optim.lr=0.003",
    )  # fmt: skip
    assert train(config, sink).status == "succeeded"
    return sink


def test_batch_scope_gives_the_same_trajectory_for_micro_batch_8_and_16() -> None:
    eight, sixteen = run("batch", 8), run("batch", 16)
    for key in TRAJECTORY:
        assert values(eight, key) == pytest.approx(values(sixteen, key), rel=1e-4, abs=1e-6), key
    beta = values(eight, mk.TRAIN_BETA)
    assert max(beta) - min(beta) > 1e-3  # β moved: the comparison is not between constants
    assert mk.BDPO_M0_STEP_MEAN not in eight.keys_at(8)  # one calibration per step: nothing to average


def test_micro_batch_scope_depends_on_the_micro_batch_size() -> None:
    eight, sixteen = run("micro_batch", 8), run("micro_batch", 16)
    assert values(eight, mk.TRAIN_BETA) != pytest.approx(values(sixteen, mk.TRAIN_BETA), rel=1e-3)
    assert values(eight, mk.BDPO_M0) != pytest.approx(values(sixteen, mk.BDPO_M0), rel=1e-3)
    # with accumulation the step carries two calibrations: the authors' step mean is logged beside
    # the last micro-batch's value, and differs from it
    m0_last, m0_mean = values(eight, mk.BDPO_M0), values(eight, mk.BDPO_M0_STEP_MEAN)
    assert len(m0_mean) == len(m0_last) and m0_mean != pytest.approx(m0_last, rel=1e-3)
    assert mk.BDPO_M0_STEP_MEAN not in sixteen.keys_at(8)


def test_unmasked_loss_is_logged_beside_the_optimised_masked_loss() -> None:
    sink = run("batch", 8, steps=4)
    masked, unmasked = values(sink, mk.TRAIN_LOSS), values(sink, mk.TRAIN_LOSS_ALL_PAIRS)
    assert len(masked) == len(unmasked) == 4
    assert masked[0] == pytest.approx(unmasked[0])  # step 1: every u_i = 0, every pair's loss log 2
    assert any(abs(a - b) > 1e-5 for a, b in zip(masked[1:], unmasked[1:], strict=True))
