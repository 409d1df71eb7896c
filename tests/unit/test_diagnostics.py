"""Per-pair diagnostics, slopes, the 3D-properties monitor and the exact gradient-norm ratio."""

import json
import math

import pytest
import torch

from worker.alignment.diagnostics import (
    ThreeDMonitor,
    gradient_norm_ratio,
    least_squares_slope,
    pair_diagnostics,
)

F64 = torch.float64


def t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def test_pair_diagnostics_hand_values() -> None:
    # s_w = −10, s_l = −12, q_w = −11, q_l = −10, n_w = 2, n_l = 4, β = 0.5.
    # ρ_w = 1, ρ_l = −2; r_w = 0.5, r_l = −1; h = 0.5·3 = 1.5; σ(−1.5) = 1/(1 + e^1.5) = 0.1824255.
    # G = −10 − (−12) = 2. D3 = [−10 + log(1 + e^−2)] − [−10 + log(1 + e^−1)]
    #   = 0.1269280 − 0.3132617 = −0.1863337.
    # Per token: 1/2 = 0.5 and −2/4 = −0.5.
    d = pair_diagnostics([-10.0], [-12.0], [-11.0], [-10.0], [2], [4], 0.5)
    assert d.chosen_logratio == pytest.approx([1.0])
    assert d.rejected_logratio == pytest.approx([-2.0])
    assert (d.chosen_reward, d.rejected_reward) == (pytest.approx([0.5]), pytest.approx([-1.0]))
    assert d.margin == pytest.approx([1.5])
    assert d.dpo_weight == pytest.approx([1 / (1 + math.exp(1.5))])
    assert d.grad_log_ratio == pytest.approx([2.0])
    assert d.pair_mass == pytest.approx([math.log1p(math.exp(-2)) - math.log1p(math.exp(-1))])
    assert d.pair_mass[0] == pytest.approx(-0.1863337, abs=1e-7)
    assert (d.chosen_logratio_per_token, d.rejected_logratio_per_token) == (
        pytest.approx([0.5]),
        pytest.approx([-0.5]),
    )


def test_pair_diagnostics_accept_instance_beta_and_empty_responses() -> None:
    d = pair_diagnostics([-1.0, -2.0], [-3.0, -2.0], [-1.0, -1.0], [-1.0, -1.0], [0, 3], [1, 1], [0.1, 1.0])
    # margins: 0.1·(0 − (−2)) = 0.2 and 1.0·(−1 − (−1)) = 0; a length of 0 counts as 1.
    assert d.margin == pytest.approx([0.2, 0.0])
    assert d.chosen_logratio_per_token == pytest.approx([0.0, -1 / 3])


def test_pair_diagnostics_equal_torch_and_survive_extreme_values() -> None:
    generator = torch.Generator().manual_seed(0)
    s_w, s_l, q_w, q_l = (torch.randn(64, dtype=F64, generator=generator) * 300 for _ in range(4))
    d = pair_diagnostics(s_w.tolist(), s_l.tolist(), q_w.tolist(), q_l.tolist(), [1] * 64, [1] * 64, 5.0)
    margin = 5.0 * ((s_w - q_w) - (s_l - q_l))  # |h| in the thousands: e^h overflows a float
    assert d.dpo_weight == pytest.approx(torch.sigmoid(-margin).tolist(), rel=1e-12, abs=1e-300)
    expected_mass = torch.logsumexp(torch.stack([s_w, s_l]), 0) - torch.logsumexp(torch.stack([q_w, q_l]), 0)
    assert d.pair_mass == pytest.approx(expected_mass.tolist(), rel=1e-12)
    inf, nan = math.inf, math.nan
    odd = pair_diagnostics(
        [inf, -inf, nan], [0.0, -inf, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1] * 3, [1] * 3, 1.0
    )
    assert odd.pair_mass[0] == inf and odd.pair_mass[1] == -inf and math.isnan(odd.pair_mass[2])
    assert odd.dpo_weight[0] == 0.0 and math.isnan(odd.dpo_weight[1]) and math.isnan(odd.dpo_weight[2])


def test_least_squares_slope() -> None:
    assert least_squares_slope([1.0, 3.0, 5.0]) == pytest.approx(2.0)
    # x̄ = 1.5, ȳ = 0.5: Σ(x−x̄)(y−ȳ) = 0.75 − 0.25 − 0.25 + 0.75 = 1, Σ(x−x̄)² = 5 → 0.2.
    assert least_squares_slope([0.0, 1.0, 0.0, 1.0]) == pytest.approx(0.2)
    # Points logged every 2 steps: rise 0.02 per point = 0.01 per step.
    assert least_squares_slope([0.0, 0.02, 0.04], steps=[10, 12, 14]) == pytest.approx(0.01)
    assert math.isnan(least_squares_slope([1.0]))
    assert math.isnan(least_squares_slope([]))


def chosen_at(step: int) -> float:
    """ρ̄_w rises 0.02/step to 0.2 at step 10, then falls 0.01/step."""
    return 0.02 * step if step <= 10 else 0.2 - 0.01 * (step - 10)


def rejected_at(step: int) -> float:
    """ρ̄_l falls 0.01/step to −0.1 at step 10, then plunges 0.1/step."""
    return -0.01 * step if step <= 10 else -0.1 - 0.1 * (step - 10)


def pair_mass_at(step: int) -> float:
    return math.log(math.exp(chosen_at(step)) + math.exp(rejected_at(step)))


def make_monitor() -> ThreeDMonitor:
    return ThreeDMonitor(window=3, kappa=5.0, consecutive=3, slope_eps=1e-4, drawdown=0.035)


def run(monitor: ThreeDMonitor, steps: range) -> dict[int, object]:
    return {
        step: monitor.update(step, chosen_at(step), rejected_at(step), pair_mass_at(step)) for step in steps
    }


def test_monitor_fires_drastic_drop_then_dispersion_then_degradation() -> None:
    # Window 3 → slope = (last − first)/2.
    # Step 10 (points 8..10): ṡ_w = 0.02, ṡ_l = −0.01 → D1 = −0.5, no alert.
    # Step 11 (9..11): ṡ_w = (0.19 − 0.18)/2 = 0.005, ṡ_l = (−0.2 + 0.09)/2 = −0.055
    #   → D1 = −0.055/0.005 = −11 < −5: D1 fires.
    # Step 12 (10..12): ṡ_w = −0.01, ṡ_l = −0.1, pair mass fell (both sides fell): D3 fires.
    #   Drawdown 0.2 − 0.18 = 0.02; S_l = −(−0.2)/(−0.02 + 0.2) = 1.111.
    # Drawdown > 0.035 from step 14 (0.04) with both slopes < −ε; J = 3 consecutive → D2 fires at step 16.
    monitor = make_monitor()
    signals = run(monitor, range(31))
    fired = {alert.name: alert.step for alert in monitor.fired}
    assert fired == {"drastic_drop": 11, "dispersion": 12, "degradation": 16}
    assert [alert.name for alert in monitor.fired] == ["drastic_drop", "dispersion", "degradation"]
    assert [a.name for a in signals[11].alerts] == ["drastic_drop"]
    assert signals[13].alerts == ()
    assert signals[10].drastic_drop_rate == pytest.approx(-0.5)
    assert signals[11].drastic_drop_rate == pytest.approx(-11.0)
    step12 = signals[12]
    assert (step12.slope_chosen, step12.slope_rejected) == pytest.approx((-0.01, -0.1))
    assert step12.chosen_drawdown == pytest.approx(0.02)
    assert step12.rejected_share == pytest.approx(0.2 / 0.18)
    assert "faster" in monitor.fired[0].message


def test_monitor_signals_are_nan_until_the_window_fills() -> None:
    signals = run(make_monitor(), range(2))
    assert math.isnan(signals[1].slope_chosen) and math.isnan(signals[1].drastic_drop_rate)
    assert signals[1].chosen_drawdown == 0.0 and signals[1].alerts == ()


def test_monitor_silent_on_flat_and_healthy_trajectories() -> None:
    flat = make_monitor()
    for step in range(40):
        flat.update(step, 0.0, 0.0, 0.0)
    assert flat.fired == ()
    # Healthy DPO: chosen rises 0.01/step, rejected falls 0.02/step → D1 = −2 > −5, no drawdown.
    healthy = make_monitor()
    for step in range(40):
        healthy.update(
            step, 0.01 * step, -0.02 * step, math.log(math.exp(0.01 * step) + math.exp(-0.02 * step))
        )
    assert healthy.fired == ()


def test_monitor_state_dict_resumes_exactly() -> None:
    original = make_monitor()
    run(original, range(14))
    resumed = make_monitor()
    resumed.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert run(resumed, range(14, 31)) == run(original, range(14, 31))
    assert resumed.fired == original.fired
    assert len(original.state_dict()["steps"]) == 3  # only the window is kept


def test_gradient_norm_ratio_scalar_parameter() -> None:
    # s_w = 2θ, s_l = −3θ, w = 0.5, β = 0.1: g_w = 0.1·0.5·2 = 0.1, g_l = 0.1·0.5·(−3) = −0.15 → 1.5.
    theta = torch.tensor(1.0, dtype=F64, requires_grad=True)
    ratio = gradient_norm_ratio((2 * theta).reshape(1), (-3 * theta).reshape(1), t([0.5]), 0.1, [theta])
    assert ratio == pytest.approx(1.5)


def test_gradient_norm_ratio_linear_softmax_model() -> None:
    # s(y) = log softmax(xW + b)_y; ∂s/∂W = x ⊗ (e_y − p), ∂s/∂b = e_y − p.
    generator = torch.Generator().manual_seed(0)
    weight_matrix = torch.randn(3, 4, generator=generator, dtype=F64, requires_grad=True)
    bias = torch.randn(4, generator=generator, dtype=F64, requires_grad=True)
    x = torch.randn(2, 3, generator=generator, dtype=F64)
    chosen, rejected = torch.tensor([0, 2]), torch.tensor([1, 3])
    log_probs = torch.log_softmax(x @ weight_matrix + bias, dim=-1)
    s_w, s_l = log_probs[torch.arange(2), chosen], log_probs[torch.arange(2), rejected]
    w, beta = t([0.7, 0.2]), 0.1
    ratio = gradient_norm_ratio(s_w, s_l, w, beta, [weight_matrix, bias])

    p = log_probs.detach().exp()

    def hand_norm(labels: torch.Tensor) -> float:
        residual = beta * w[:, None] * (torch.nn.functional.one_hot(labels, 4).to(F64) - p)  # (2, 4)
        grad_w, grad_b = x.T @ residual, residual.sum(0)
        return math.sqrt(float(grad_w.pow(2).sum() + grad_b.pow(2).sum()))

    assert ratio == pytest.approx(hand_norm(rejected) / hand_norm(chosen), rel=1e-10)
    (s_w - s_l).sum().backward()  # the graph is retained for the caller
    assert weight_matrix.grad is not None


def test_gradient_norm_ratio_zero_chosen_gradient() -> None:
    theta = torch.tensor(1.0, requires_grad=True)
    zero = (theta * 0).reshape(1)
    assert gradient_norm_ratio(zero, theta.reshape(1), torch.ones(1), 0.1, [theta]) == math.inf
    assert math.isnan(gradient_norm_ratio(zero, zero, torch.ones(1), 0.1, [theta]))
