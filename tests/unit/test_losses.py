"""Preference losses: hand-computed values, analytic gradients, gradcheck, reductions, dispatch."""

import math

import pytest
import torch

from worker.alignment.losses import (
    LOSS_FUNCTIONS,
    dpo_loss,
    flex_loss,
    hinge_loss,
    ipo_loss,
    preference_loss,
    robust_loss,
    sft_sequence_term,
    sft_token_term,
    sppo_hard_loss,
)

SOFTPLUS_MINUS_ONE = math.log1p(math.exp(-1.0))  # −log σ(1) = log(1 + e^−1) = 0.3132617
F64 = torch.float64


def pair(chosen: list[float], rejected: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(chosen, dtype=F64), torch.tensor(rejected, dtype=F64)


def test_dpo_hand_value() -> None:
    # ρ_w = 1, ρ_l = −1, β = 0.5 → h = 0.5·2 = 1 → −log σ(1) = 0.3132617.
    # Second pair ρ_w = ρ_l → h = 0 → log 2.
    chosen, rejected = pair([1.0, 0.3], [-1.0, 0.3])
    loss = dpo_loss(chosen, rejected, 0.5)
    assert loss.tolist() == pytest.approx([SOFTPLUS_MINUS_ONE, math.log(2.0)])


def test_cdpo_hand_value() -> None:
    # ε = 0.1, h = 1: 0.9·softplus(−1) + 0.1·softplus(1); softplus(1) = 1 + softplus(−1)
    # → softplus(−1) + 0.1 = 0.4132617.
    chosen, rejected = pair([1.0], [-1.0])
    assert dpo_loss(chosen, rejected, 0.5, label_smoothing=0.1).item() == pytest.approx(
        SOFTPLUS_MINUS_ONE + 0.1
    )


def test_ipo_hand_value() -> None:
    # u = 1.5 − (−0.5) = 2, β = 0.5 → 1/(2β) = 1 → (2 − 1)² = 1; u = 0 → (0 − 1)² = 1; u = 3 → 4.
    chosen, rejected = pair([1.5, 0.0, 3.0], [-0.5, 0.0, 0.0])
    assert ipo_loss(chosen, rejected, 0.5).tolist() == pytest.approx([1.0, 1.0, 4.0])


def test_hinge_hand_value() -> None:
    # β = 0.25: u = 2 → relu(1 − 0.5) = 0.5; u = 8 → relu(1 − 2) = 0; u = −4 → relu(2) = 2.
    chosen, rejected = pair([2.0, 8.0, -4.0], [0.0, 0.0, 0.0])
    assert hinge_loss(chosen, rejected, 0.25).tolist() == pytest.approx([0.5, 0.0, 2.0])


def test_robust_hand_value() -> None:
    # ε = 0.1, h = 1: [0.9·softplus(−1) − 0.1·softplus(1)] / 0.8
    # = [0.9·0.3132617 − 0.1·1.3132617] / 0.8 = (0.2819355 − 0.1313262) / 0.8 = 0.1882617.
    chosen, rejected = pair([1.0], [-1.0])
    expected = (0.9 * SOFTPLUS_MINUS_ONE - 0.1 * (1.0 + SOFTPLUS_MINUS_ONE)) / 0.8
    assert robust_loss(chosen, rejected, 0.5, 0.1).item() == pytest.approx(expected)
    assert expected == pytest.approx(0.1882617, abs=1e-7)


def test_robust_rejects_half_smoothing() -> None:
    chosen, rejected = pair([1.0], [0.0])
    with pytest.raises(ValueError, match="label_smoothing"):
        robust_loss(chosen, rejected, 0.1, 0.5)


def test_sppo_hard_hand_value() -> None:
    # β = 0.5 → 1/(2β) = 1. (1 − 1)² + (−1 + 1)² = 0; (3 − 1)² + (0 + 1)² = 4 + 1 = 5.
    chosen, rejected = pair([1.0, 3.0], [-1.0, 0.0])
    assert sppo_hard_loss(chosen, rejected, 0.5).tolist() == pytest.approx([0.0, 5.0])


def test_flex_hand_value() -> None:
    # βw = 0.5, βl = 0.25, ρ_w = 1, ρ_l = −2 → 0.5·1 − 0.25·(−2) = 1 → −log σ(1).
    chosen, rejected = pair([1.0], [-2.0])
    assert flex_loss(chosen, rejected, 0.5, 0.25).item() == pytest.approx(SOFTPLUS_MINUS_ONE)


def test_sft_terms_hand_values() -> None:
    logps = torch.tensor([-2.0, -4.0], dtype=F64)
    # sequence form: −λ·s = −0.5·[−2, −4] = [1, 2].
    assert sft_sequence_term(logps, 0.5).tolist() == [1.0, 2.0]
    # token form: λ·(−Σs/Σn) = 0.5·(6 / (2 + 4)) = 0.5, a 0-dim tensor.
    term = sft_token_term(logps, torch.tensor([2, 4]), 0.5)
    assert term.dim() == 0 and term.item() == pytest.approx(0.5)


def test_dpo_analytic_gradient() -> None:
    # ∂ℓ/∂ρ_w = −β σ(−h), ∂ℓ/∂ρ_l = +β σ(−h) (SCIENCE.md §A.3).
    chosen = torch.tensor([1.0, -0.7, 2.5], dtype=F64, requires_grad=True)
    rejected = torch.tensor([-1.0, 0.4, 2.0], dtype=F64, requires_grad=True)
    beta = 0.3
    dpo_loss(chosen, rejected, beta).sum().backward()
    weight = torch.sigmoid(-beta * (chosen - rejected)).detach()
    torch.testing.assert_close(chosen.grad, -beta * weight)
    torch.testing.assert_close(rejected.grad, beta * weight)


LOSS_CASES = [
    ("dpo", {}),
    ("dpo", {"label_smoothing": 0.2}),
    ("ipo", {}),
    ("hinge", {}),
    ("robust", {"label_smoothing": 0.2}),
    ("sppo_hard", {}),
    ("flex", {"beta_rejected": 0.05}),
]


@pytest.mark.parametrize(("kind", "params"), LOSS_CASES)
def test_gradcheck_every_loss(kind: str, params: dict[str, float]) -> None:
    generator = torch.Generator().manual_seed(1)
    # Hinge is not differentiable at βu = 1: keep |1 − 0.1u| away from 0 (u = 10 is the kink).
    chosen = torch.randn(5, generator=generator, dtype=F64).requires_grad_()
    rejected = torch.randn(5, generator=generator, dtype=F64).requires_grad_()
    beta = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=F64)
    assert torch.autograd.gradcheck(
        lambda c, r: preference_loss(kind, c, r, beta, **params), (chosen, rejected), eps=1e-6, atol=1e-7
    )


def test_gradcheck_through_instance_beta() -> None:
    chosen = torch.tensor([0.5, -1.0], dtype=F64, requires_grad=True)
    rejected = torch.tensor([-0.2, 0.3], dtype=F64, requires_grad=True)
    beta = torch.tensor([0.1, 0.7], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, r, b: dpo_loss(c, r, b), (chosen, rejected, beta))


def test_robust_with_zero_smoothing_is_dpo() -> None:
    chosen, rejected = pair([1.2, -0.4, 3.0], [0.1, 0.9, -2.0])
    torch.testing.assert_close(robust_loss(chosen, rejected, 0.2, 0.0), dpo_loss(chosen, rejected, 0.2))


def test_flex_with_equal_betas_is_dpo() -> None:
    chosen, rejected = pair([1.2, -0.4, 3.0], [0.1, 0.9, -2.0])
    torch.testing.assert_close(flex_loss(chosen, rejected, 0.2, 0.2), dpo_loss(chosen, rejected, 0.2))


def test_beta_forms_agree() -> None:
    # A python float, a 0-dim tensor and a constant (B,) tensor give the same per-pair loss.
    chosen, rejected = pair([1.2, -0.4], [0.1, 0.9])
    by_float = dpo_loss(chosen, rejected, 0.3)
    torch.testing.assert_close(dpo_loss(chosen, rejected, torch.tensor(0.3, dtype=F64)), by_float)
    torch.testing.assert_close(dpo_loss(chosen, rejected, torch.full((2,), 0.3, dtype=F64)), by_float)


def test_instance_beta_applies_per_pair() -> None:
    # β = [0.5, 1.0], u = [2, 1] → h = [1, 1] → both −log σ(1).
    chosen, rejected = pair([2.0, 1.0], [0.0, 0.0])
    loss = dpo_loss(chosen, rejected, torch.tensor([0.5, 1.0], dtype=F64))
    assert loss.tolist() == pytest.approx([SOFTPLUS_MINUS_ONE, SOFTPLUS_MINUS_ONE])


def test_dispatch_matches_direct_calls() -> None:
    chosen, rejected = pair([1.0, -0.5], [0.2, 0.4])
    torch.testing.assert_close(preference_loss("ipo", chosen, rejected, 0.1), ipo_loss(chosen, rejected, 0.1))
    torch.testing.assert_close(
        preference_loss("flex", chosen, rejected, 0.1, beta_rejected=0.02),
        flex_loss(chosen, rejected, 0.1, 0.02),
    )
    torch.testing.assert_close(
        preference_loss("robust", chosen, rejected, 0.1, label_smoothing=0.1),
        robust_loss(chosen, rejected, 0.1, 0.1),
    )
    assert set(LOSS_FUNCTIONS) == {"dpo", "ipo", "hinge", "robust", "sppo_hard", "flex"}


def test_unknown_kind_names_the_kinds() -> None:
    chosen, rejected = pair([1.0], [0.0])
    with pytest.raises(ValueError, match="sppo_hard"):
        preference_loss("kto", chosen, rejected, 0.1)
