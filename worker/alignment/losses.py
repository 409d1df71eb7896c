"""Per-pair preference losses (SCIENCE.md §A.2, §C.2, §D.2).

Every loss takes the log-ratios ρ_w = s_θ(y_w) − s_ref(y_w) and ρ_l = s_θ(y_l) − s_ref(y_l), shape (B,),
in nats, and returns the per-pair loss (B,); the caller reduces (mean, or masked mean for β-DPO).
``beta`` may be a python float, a 0-dim tensor (batch β) or a (B,) tensor (instance β); a dynamic β is
computed elsewhere and passed in, never computed here. Notation: u = ρ_w − ρ_l, h = β·u.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Beta = float | Tensor


def dpo_loss(
    chosen_logratios: Tensor, rejected_logratios: Tensor, beta: Beta, label_smoothing: float = 0.0
) -> Tensor:
    """DPO −log σ(h); with label smoothing ε > 0 conservative DPO: −(1−ε) log σ(h) − ε log σ(−h)."""
    h = beta * (chosen_logratios - rejected_logratios)
    loss = F.softplus(-h)
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss + label_smoothing * F.softplus(h)
    return loss


def ipo_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: Beta) -> Tensor:
    """IPO (u − 1/(2β))². Pass per-token log-ratios ρ/n for TRL's length-normalised form."""
    return (chosen_logratios - rejected_logratios - 1.0 / (2.0 * beta)) ** 2


def hinge_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: Beta) -> Tensor:
    """SLiC hinge max(0, 1 − β·u)."""
    return torch.relu(1.0 - beta * (chosen_logratios - rejected_logratios))


def robust_loss(
    chosen_logratios: Tensor, rejected_logratios: Tensor, beta: Beta, label_smoothing: float
) -> Tensor:
    """Robust DPO [−(1−ε) log σ(h) + ε log σ(−h)] / (1 − 2ε), ε ∈ [0, 0.5)."""
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"robust loss needs 0 <= label_smoothing < 0.5, got {label_smoothing}")
    h = beta * (chosen_logratios - rejected_logratios)
    eps = label_smoothing
    return ((1.0 - eps) * F.softplus(-h) - eps * F.softplus(h)) / (1.0 - 2.0 * eps)


def sppo_hard_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: Beta) -> Tensor:
    """SPPO-hard (ρ_w − 1/(2β))² + (ρ_l + 1/(2β))²."""
    half_inverse = 1.0 / (2.0 * beta)
    return (chosen_logratios - half_inverse) ** 2 + (rejected_logratios + half_inverse) ** 2


def flex_loss(
    chosen_logratios: Tensor, rejected_logratios: Tensor, beta_chosen: Beta, beta_rejected: Beta
) -> Tensor:
    """Flex-DPO −log σ(βw·ρ_w − βl·ρ_l) (3D paper §5.2.1); βw = βl is DPO."""
    return F.softplus(-(beta_chosen * chosen_logratios - beta_rejected * rejected_logratios))


def sft_sequence_term(policy_chosen_logps: Tensor, weight: float) -> Tensor:
    """Per-pair SFT term −λ·s_θ(y_w|x) (3D paper Eq. 7), shape (B,); add it to the per-pair loss."""
    return -weight * policy_chosen_logps


def sft_token_term(policy_chosen_logps: Tensor, chosen_tokens: Tensor, weight: float) -> Tensor:
    """TRL's per-token SFT term λ·(−Σ_i s_θ(y_w^i) / Σ_i n_w^i), a 0-dim tensor over the batch.

    policy_chosen_logps: (B,) summed nats; chosen_tokens: (B,) response lengths n_w.
    """
    total_tokens = chosen_tokens.sum().clamp_min(1).to(policy_chosen_logps.dtype)
    return weight * (-policy_chosen_logps.sum() / total_tokens)


LOSS_FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "dpo": dpo_loss,
    "ipo": ipo_loss,
    "hinge": hinge_loss,
    "robust": robust_loss,
    "sppo_hard": sppo_hard_loss,
    "flex": flex_loss,
}


def preference_loss(
    kind: str, chosen_logratios: Tensor, rejected_logratios: Tensor, beta: Beta, **params: float | Tensor
) -> Tensor:
    """Dispatch to the loss named ``kind`` (a key of LOSS_FUNCTIONS); returns (B,).

    ``beta`` is the β multiplying the pair (βw for flex). Extra parameters by name: ``label_smoothing``
    for dpo and robust, ``beta_rejected`` for flex. An unknown kind raises ValueError.
    """
    loss_function = LOSS_FUNCTIONS.get(kind)
    if loss_function is None:
        raise ValueError(f"unknown loss kind {kind!r}; expected one of {sorted(LOSS_FUNCTIONS)}")
    return loss_function(chosen_logratios, rejected_logratios, beta, **params)
