"""β-DPO calibrator: a naive step-by-step re-implementation, reductions, edge cases, state."""

import math

import pytest
import torch

from worker.alignment.beta_dpo import (
    BetaCalibrator,
    CalibratorSettings,
    gumbel_top_k,
    keep_count,
    masked_mean,
)
from worker.alignment.losses import dpo_loss

F64 = torch.float64


class NaiveCalibrator:
    """SCIENCE.md Product decisions 1–3 written with plain python loops and floats."""

    def __init__(self, settings: CalibratorSettings, seed: int) -> None:
        self.s = settings
        self.generator = torch.Generator().manual_seed(seed)
        self.m0 = 0.0
        self.sigma = 0.0

    def step(self, u: list[float]) -> dict[str, object]:
        s, n = self.s, len(u)
        mean = sum(u) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in u) / (n - 1)) if n > 1 else 0.0
        self.m0 = s.momentum * self.m0 + (1 - s.momentum) * mean
        self.sigma = s.momentum * self.sigma + (1 - s.momentum) * std
        sigma_eff = max(self.sigma, s.sigma_floor)
        log_w = [-0.5 * ((x - self.m0) / sigma_eff) ** 2 for x in u]
        # Same draw as the calibrator: one float64 torch.rand(N) on the generator, Gumbel = −log(−log U).
        uniforms = torch.rand(n, generator=self.generator, dtype=F64).tolist()
        keys = [
            lw - math.log(-math.log(max(v, 2.2250738585072014e-308)))
            for lw, v in zip(log_w, uniforms, strict=True)
        ]
        n_keep = max(int(n * s.keep_ratio), 1)
        kept = sorted(range(n), key=lambda i: -keys[i])[:n_keep]
        m_bar = sum(u[i] for i in kept) / len(kept)
        if s.level == "instance":
            beta = [max(s.beta0 * (1 + s.alpha * (x - self.m0)), s.beta_min) for x in u]
        else:
            beta = max(s.beta0 * (1 + s.alpha * (m_bar - self.m0)), s.beta_min)
        return {
            "m0": self.m0,
            "sigma": self.sigma,
            "weight": [math.exp(lw) for lw in log_w],
            "keep": [i in kept for i in range(n)],
            "beta": beta,
            "m_bar_kept": m_bar,
            "n_keep": n_keep,
        }


@pytest.mark.parametrize("level", ["batch", "instance"])
def test_agrees_with_naive_implementation_over_50_micro_batches(level: str) -> None:
    settings = CalibratorSettings(beta0=0.1, alpha=0.6, keep_ratio=0.8, level=level)
    calibrator = BetaCalibrator(settings, torch.Generator().manual_seed(7))
    naive = NaiveCalibrator(settings, seed=7)
    data = torch.Generator().manual_seed(3)
    for step in range(50):
        n = int(torch.randint(1, 33, (1,), generator=data))
        u = torch.randn(n, generator=data, dtype=F64) * (0.5 + step / 10) + step / 20
        got = calibrator.calibrate(u)
        want = naive.step(u.tolist())
        assert got.m0 == pytest.approx(want["m0"], rel=1e-12, abs=1e-14)
        assert got.sigma == pytest.approx(want["sigma"], rel=1e-12, abs=1e-14)
        assert got.weight.tolist() == pytest.approx(want["weight"], rel=1e-9, abs=1e-300)
        assert got.keep.tolist() == want["keep"]
        assert int(got.keep.sum()) == want["n_keep"]
        assert got.m_bar_kept == pytest.approx(want["m_bar_kept"], rel=1e-12, abs=1e-14)
        if level == "instance":
            assert got.beta.shape == (n,)
            assert got.beta.tolist() == pytest.approx(want["beta"], rel=1e-12)
        else:
            assert got.beta.dim() == 0
            assert got.beta.item() == pytest.approx(want["beta"], rel=1e-12)


def test_alpha_zero_keep_all_is_dpo_exactly() -> None:
    calibrator = BetaCalibrator(CalibratorSettings(beta0=0.1, alpha=0.0, keep_ratio=1.0))
    chosen = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)
    rejected = torch.tensor([0.2, -1.0, 1.5, -3.0], dtype=F64)
    calibration = calibrator.calibrate(chosen - rejected)
    per_pair = dpo_loss(chosen, rejected, calibration.beta)
    assert calibration.beta.item() == 0.1  # β0·(1 + 0·(M̄ − M0)) = β0 exactly
    assert torch.equal(per_pair, dpo_loss(chosen, rejected, 0.1))
    torch.testing.assert_close(
        masked_mean(per_pair, calibration.keep), dpo_loss(chosen, rejected, 0.1).mean()
    )


def test_keep_ratio_one_keeps_every_pair() -> None:
    calibrator = BetaCalibrator(
        CalibratorSettings(beta0=0.1, keep_ratio=1.0), torch.Generator().manual_seed(0)
    )
    calibration = calibrator.calibrate(torch.tensor([-50.0, 0.0, 3.0, 80.0]))
    assert calibration.keep.all()
    assert calibration.filtered_high == calibration.filtered_low == 0


def test_zero_sigma_on_first_step_does_not_nan() -> None:
    # Identical policy and reference: u = 0 → M0 = σ = 0, σ_eff = 1e-3, z = 0, all weights 1, β = β0.
    calibrator = BetaCalibrator(CalibratorSettings(beta0=0.1), torch.Generator().manual_seed(0))
    calibration = calibrator.calibrate(torch.zeros(5))
    assert calibration.sigma == 0.0
    assert calibration.weight.tolist() == [1.0] * 5
    assert int(calibration.keep.sum()) == 4  # floor(5·0.8)
    assert calibration.beta.item() == pytest.approx(0.1)


def test_constant_nonzero_logits_underflow_but_still_keep() -> None:
    # u = 5 for all four: M0 = 0.1·5 = 0.5, σ = 0 → z = 4.5/1e-3 = 4500 → weights underflow to 0.
    # floor(4·0.8) = 3 kept anyway; β = 0.1·(1 + 0.6·(5 − 0.5)) = 0.1·3.7 = 0.37.
    calibrator = BetaCalibrator(CalibratorSettings(beta0=0.1), torch.Generator().manual_seed(0))
    calibration = calibrator.calibrate(torch.full((4,), 5.0, dtype=F64))
    assert calibration.weight.tolist() == [0.0] * 4
    assert int(calibration.keep.sum()) == 3
    assert calibration.beta.item() == pytest.approx(0.37)
    assert calibration.filtered_high == 1 and calibration.filtered_low == 0


def test_underflowing_weights_keep_the_closest_pairs() -> None:
    # u = 1000..1009: mean 1004.5, unbiased std 3.0277 → M0 = 100.45, σ = 0.30277 → |z| ≈ 2970..3000 ≫ 40.
    # Every weight underflows; the log-weights differ by thousands, so Gumbel noise cannot reorder them:
    # the floor(10·0.8) = 8 pairs closest to M0 (the 8 smallest u) are kept, the 2 largest dropped (high).
    calibrator = BetaCalibrator(CalibratorSettings(beta0=0.1), torch.Generator().manual_seed(0))
    calibration = calibrator.calibrate(torch.arange(1000.0, 1010.0, dtype=F64))
    assert calibration.m0 == pytest.approx(100.45)
    assert calibration.weight.max().item() == 0.0
    assert calibration.keep.tolist() == [True] * 8 + [False] * 2
    assert (calibration.filtered_high, calibration.filtered_low) == (2, 0)
    assert math.isfinite(calibration.beta.item())


def test_eval_freezes_state_keeps_all_and_draws_nothing() -> None:
    generator = torch.Generator().manual_seed(5)
    calibrator = BetaCalibrator(CalibratorSettings(beta0=0.1), generator)
    calibrator.calibrate(torch.tensor([0.0, 1.0, 2.0, 3.0]))  # M0 = 0.1·1.5 = 0.15
    state, rng = calibrator.state_dict(), generator.get_state()
    calibration = calibrator.calibrate(torch.tensor([10.0, -10.0, 4.0]), train=False)
    assert calibrator.state_dict() == state
    assert torch.equal(generator.get_state(), rng)
    assert calibration.keep.all() and calibration.m0 == state["m0"]
    # β from the frozen M0 and the mean of all (kept) pairs: 0.1·(1 + 0.6·(4/3 − 0.15)) = 0.171.
    assert calibration.beta.item() == pytest.approx(0.1 * (1 + 0.6 * (4 / 3 - 0.15)))


def test_instance_level_beta_per_pair() -> None:
    # Single step: M0 = 0.1·mean([0, 2, −20]) = −0.6; β_i = max(0.1·(1 + 0.5·(u_i + 0.6)), 1e-3)
    # → [0.1·1.3, 0.1·2.3, max(0.1·(1 − 9.7), 1e-3)] = [0.13, 0.23, 0.001].
    settings = CalibratorSettings(beta0=0.1, alpha=0.5, level="instance", filtering=False)
    calibration = BetaCalibrator(settings).calibrate(torch.tensor([0.0, 2.0, -20.0], dtype=F64))
    assert calibration.beta.shape == (3,)
    assert calibration.beta.tolist() == pytest.approx([0.13, 0.23, 0.001])


def test_paper_units_scale_discrepancy_by_beta0() -> None:
    # M = β0·u = 0.1·[1, 3] = [0.1, 0.3]; M0 = 0.1·0.2 = 0.02; no filtering so M̄ = 0.2;
    # β = 0.1·(1 + 2·(0.2 − 0.02)) = 0.1·1.36 = 0.136.
    settings = CalibratorSettings(beta0=0.1, alpha=2.0, filtering=False, paper_units=True)
    calibration = BetaCalibrator(settings).calibrate(torch.tensor([1.0, 3.0], dtype=F64))
    assert calibration.discrepancy.tolist() == pytest.approx([0.1, 0.3])
    assert calibration.m0 == pytest.approx(0.02)
    assert calibration.beta.item() == pytest.approx(0.136)


def test_ablation_switches() -> None:
    u = torch.tensor([1.0, 2.0, 30.0, 4.0, 5.0], dtype=F64)
    fixed_beta = BetaCalibrator(
        CalibratorSettings(beta0=0.1, dynamic_beta=False), torch.Generator().manual_seed(0)
    )
    calibration = fixed_beta.calibrate(u)
    assert calibration.beta.item() == 0.1 and int(calibration.keep.sum()) == 4
    no_filter = BetaCalibrator(CalibratorSettings(beta0=0.1, filtering=False))
    calibration = no_filter.calibrate(u)
    assert calibration.keep.all() and calibration.weight.tolist() == [1.0] * 5
    # M0 = 0.1·8.4 = 0.84, M̄ = 8.4 → β = 0.1·(1 + 0.6·7.56) = 0.5536.
    assert calibration.beta.item() == pytest.approx(0.5536)


def test_init_from_first_batch() -> None:
    # M0 = mean([1, 3]) = 2, σ = unbiased std = √2, then EMA: M0 = 0.9·2 + 0.1·5 = 2.3, σ = 0.9·√2 + 0.
    calibrator = BetaCalibrator(CalibratorSettings(beta0=0.1, init_from_first_batch=True, filtering=False))
    first = calibrator.calibrate(torch.tensor([1.0, 3.0], dtype=F64))
    assert (first.m0, first.sigma) == pytest.approx((2.0, math.sqrt(2.0)))
    second = calibrator.calibrate(torch.tensor([5.0, 5.0], dtype=F64))
    assert (second.m0, second.sigma) == pytest.approx((2.3, 0.9 * math.sqrt(2.0)))


def test_single_pair_micro_batch() -> None:
    # std of one element is 0; floor(1·0.8) = 0 → at least 1 kept. M0 = 0.1·2 = 0.2.
    calibration = BetaCalibrator(CalibratorSettings(beta0=0.1)).calibrate(torch.tensor([2.0]))
    assert calibration.sigma == 0.0 and calibration.keep.tolist() == [True]
    assert calibration.m0 == pytest.approx(0.2)


def test_state_dict_round_trip_resumes_exactly() -> None:
    data = torch.Generator().manual_seed(11)
    batches = [torch.randn(8, generator=data, dtype=F64) for _ in range(5)]
    generator = torch.Generator().manual_seed(2)
    original = BetaCalibrator(CalibratorSettings(beta0=0.1), generator)
    for batch in batches[:3]:
        original.calibrate(batch)
    resumed = BetaCalibrator(CalibratorSettings(beta0=0.1), torch.Generator())
    resumed.load_state_dict(original.state_dict())
    resumed.generator.set_state(generator.get_state())
    for batch in batches[3:]:
        a, b = original.calibrate(batch), resumed.calibrate(batch)
        assert torch.equal(a.keep, b.keep) and torch.equal(a.beta, b.beta) and a.m0 == b.m0
    assert set(original.state_dict()) == {"m0", "sigma", "initialized"}


def test_ranks_sharing_a_seed_keep_the_same_pairs() -> None:
    u = torch.randn(64, generator=torch.Generator().manual_seed(4))
    ranks = [
        BetaCalibrator(CalibratorSettings(beta0=0.1), torch.Generator().manual_seed(9)) for _ in range(2)
    ]
    assert torch.equal(ranks[0].calibrate(u).keep, ranks[1].calibrate(u).keep)


def test_gumbel_top_k_first_pick_follows_weights() -> None:
    # k = 1: P(i) = w_i / Σw = [0.5, 0.3, 0.2]; 4000 draws → standard error ≤ 0.008, tolerance 0.03.
    generator = torch.Generator().manual_seed(0)
    log_weights = torch.tensor([0.5, 0.3, 0.2]).log()
    counts = torch.zeros(3)
    for _ in range(4000):
        counts += gumbel_top_k(log_weights, 1, generator).float()
    assert (counts / 4000).tolist() == pytest.approx([0.5, 0.3, 0.2], abs=0.03)


def test_keep_count_and_masked_mean() -> None:
    assert keep_count(100, 0.29) == 29  # 100·0.29 = 28.999999999999996 in floating point
    assert keep_count(10, 0.8) == 8 and keep_count(3, 0.1) == 1
    values = torch.tensor([1.0, 2.0, 3.0])
    assert masked_mean(values, torch.tensor([True, False, True])).item() == 2.0  # (1 + 3) / 2
    assert masked_mean(values, torch.zeros(3, dtype=torch.bool)).item() == 0.0  # 0 / max(0, 1)


def test_invalid_settings_raise() -> None:
    with pytest.raises(ValueError, match="level"):
        CalibratorSettings(beta0=0.1, level="token")
    with pytest.raises(ValueError, match="keep_ratio"):
        CalibratorSettings(beta0=0.1, keep_ratio=0.0)
    with pytest.raises(ValueError, match="non-empty"):
        BetaCalibrator(CalibratorSettings(beta0=0.1)).calibrate(torch.zeros(0))
