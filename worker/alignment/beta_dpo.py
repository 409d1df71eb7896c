"""The β-DPO calibrator (SCIENCE.md Product decisions 1–3, §B.2, §B.3, §E).

One call per (global) micro-batch, in the authors' order:
1. M_i = u_i (code units) or β0·u_i (paper units), detached.
2. In training, the EMAs M0 ← m·M0 + (1−m)·mean(M) and σ ← m·σ + (1−m)·std(M) (unbiased; a single
   element has std 0) are updated from ALL N pairs, before filtering.
3. Filtering keeps floor(N·ρ) pairs (at least 1), drawn without replacement with weights
   w_i = exp(−(M_i − M0)²/(2σ_eff²)), σ_eff = max(σ, σ_floor), by Gumbel-top-k on log w_i.
4. β = max(β0·(1 + α·(mean of kept M_i − M0)), β_min) (batch level) or
   β_i = max(β0·(1 + α·(M_i − M0)), β_min) (instance level), detached.

Evaluation (train=False) is a deliberate deviation from the authors' code (§B.3-7): the EMAs stay
frozen, nothing is filtered (every pair is kept), no random numbers are drawn, and β comes from the
frozen M0. The weights are still reported (from the frozen M0, σ) for the diagnostics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

_FLOOR_TOLERANCE = 1e-9  # floor(N·ρ) must not lose a pair to 0.29·100 = 28.999999999999996


@dataclass(frozen=True)
class CalibratorSettings:
    """β-DPO hyper-parameters. alpha is in the units of M (u-units unless ``paper_units``)."""

    beta0: float
    alpha: float = 0.6
    keep_ratio: float = 0.8
    momentum: float = 0.9
    beta_min: float = 1e-3
    sigma_floor: float = 1e-3
    dynamic_beta: bool = True
    filtering: bool = True
    level: str = "batch"
    paper_units: bool = False
    init_from_first_batch: bool = False

    def __post_init__(self) -> None:
        if self.level not in ("batch", "instance"):
            raise ValueError(f"level must be 'batch' or 'instance', got {self.level!r}")
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"keep_ratio must be in (0, 1], got {self.keep_ratio}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")


@dataclass(frozen=True)
class Calibration:
    """The outcome for one micro-batch of N pairs; tensors are detached, on the input's device."""

    beta: Tensor  # 0-dim (batch level) or (N,) (instance level): the β multiplying each pair's logit
    keep: Tensor  # (N,) bool
    weight: Tensor  # (N,) exp(−(M_i − M0)²/(2σ_eff²)); ones when filtering is off
    discrepancy: Tensor  # (N,) M_i (u or β0·u)
    m0: float  # EMA threshold after this micro-batch's update
    sigma: float  # EMA std after this micro-batch's update (before the floor)
    m_bar_kept: float
    m_bar_all: float
    filtered_high: int  # dropped pairs with M_i > M0
    filtered_low: int  # dropped pairs with M_i < M0


def masked_mean(values: Tensor, keep: Tensor) -> Tensor:
    """Σ keep·v / max(Σ keep, 1), a 0-dim tensor; values and keep (N,), keep bool or 0/1."""
    mask = keep.to(values.dtype)
    return (mask * values).sum() / mask.sum().clamp_min(1.0)


def keep_count(n: int, keep_ratio: float) -> int:
    """floor(N·ρ), at least 1 (for N ≥ 1)."""
    return max(math.floor(n * keep_ratio + _FLOOR_TOLERANCE), 1)


def gumbel_top_k(log_weights: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """A (N,) bool mask of k indices drawn without replacement with probabilities ∝ exp(log_weights).

    Gumbel-top-k: keys = log w_i + G_i with G_i = −log(−log U_i), U_i ~ U(0,1) drawn in float64 as one
    ``torch.rand(N)`` call on the generator's device; the k largest keys win. It works in log space, so
    weights that underflow to 0 never make it fail.
    """
    n = log_weights.numel()
    device = generator.device if generator is not None else log_weights.device
    uniform = torch.rand(n, generator=generator, dtype=torch.float64, device=device)
    uniform = uniform.clamp_min(torch.finfo(torch.float64).tiny).to(log_weights.device)
    keys = log_weights.to(torch.float64) - torch.log(-torch.log(uniform))
    keep = torch.zeros(n, dtype=torch.bool, device=log_weights.device)
    keep[torch.topk(keys, k).indices] = True
    return keep


class BetaCalibrator:
    """Holds the EMA state (M0, σ) and turns each micro-batch's logits u into a Calibration.

    ``generator`` draws the filter's Gumbel noise; give every rank a generator with the same seed so that
    ranks agree on the kept pairs. Its state is not part of ``state_dict`` (checkpoint it with the RNGs).
    """

    def __init__(self, settings: CalibratorSettings, generator: torch.Generator | None = None) -> None:
        self.settings = settings
        self.generator = generator
        self.m0 = 0.0
        self.sigma = 0.0
        self.initialized = False

    def calibrate(self, logits: Tensor, train: bool = True) -> Calibration:
        """logits: (N,) u_i = ρ_w − ρ_l of the global micro-batch (already gathered); detached here."""
        if logits.dim() != 1 or logits.numel() == 0:
            raise ValueError(f"expected a non-empty (N,) tensor of logits, got shape {tuple(logits.shape)}")
        settings = self.settings
        u = logits.detach()
        u = u.to(torch.promote_types(u.dtype, torch.float32))
        discrepancy = settings.beta0 * u if settings.paper_units else u
        if train:
            self._update_ema(discrepancy)
        sigma_eff = max(self.sigma, settings.sigma_floor)
        log_weight = -0.5 * ((discrepancy - self.m0) / sigma_eff) ** 2
        weight = torch.exp(log_weight) if settings.filtering else torch.ones_like(discrepancy)
        n = discrepancy.numel()
        if settings.filtering and train:
            keep = gumbel_top_k(log_weight, keep_count(n, settings.keep_ratio), self.generator)
        else:
            keep = torch.ones(n, dtype=torch.bool, device=discrepancy.device)
        return self._finish(discrepancy, keep, weight)

    def _update_ema(self, discrepancy: Tensor) -> None:
        """EMA of the batch mean and unbiased batch std of M, from all N pairs (std of one pair = 0)."""
        mean = discrepancy.mean()
        std = discrepancy.std() if discrepancy.numel() > 1 else torch.zeros_like(mean)
        batch_mean, batch_std = torch.stack([mean, std]).tolist()
        momentum = self.settings.momentum
        if self.settings.init_from_first_batch and not self.initialized:
            self.m0, self.sigma = batch_mean, batch_std
        else:
            self.m0 = momentum * self.m0 + (1.0 - momentum) * batch_mean
            self.sigma = momentum * self.sigma + (1.0 - momentum) * batch_std
        self.initialized = True

    def _finish(self, discrepancy: Tensor, keep: Tensor, weight: Tensor) -> Calibration:
        """β from the kept pairs and the summary scalars, with one host transfer."""
        settings = self.settings
        dropped = ~keep
        m_bar_kept, m_bar_all, high, low = torch.stack(
            [
                masked_mean(discrepancy, keep),
                discrepancy.mean(),
                (dropped & (discrepancy > self.m0)).sum().to(discrepancy.dtype),
                (dropped & (discrepancy < self.m0)).sum().to(discrepancy.dtype),
            ]
        ).tolist()
        if settings.level == "instance" and settings.dynamic_beta:
            beta = (settings.beta0 * (1.0 + settings.alpha * (discrepancy - self.m0))).clamp_min(
                settings.beta_min
            )
        elif settings.level == "instance":
            beta = torch.full_like(discrepancy, settings.beta0)
        else:
            beta_value = settings.beta0
            if settings.dynamic_beta:
                beta_value = max(
                    settings.beta0 * (1.0 + settings.alpha * (m_bar_kept - self.m0)), settings.beta_min
                )
            beta = torch.tensor(beta_value, dtype=discrepancy.dtype, device=discrepancy.device)
        return Calibration(
            beta=beta,
            keep=keep,
            weight=weight,
            discrepancy=discrepancy,
            m0=self.m0,
            sigma=self.sigma,
            m_bar_kept=m_bar_kept,
            m_bar_all=m_bar_all,
            filtered_high=int(high),
            filtered_low=int(low),
        )

    def state_dict(self) -> dict[str, float | bool]:
        """The EMA state, for checkpoints."""
        return {"m0": self.m0, "sigma": self.sigma, "initialized": self.initialized}

    def load_state_dict(self, state: dict[str, float | bool]) -> None:
        """Restore what ``state_dict`` returned."""
        self.m0 = float(state["m0"])
        self.sigma = float(state["sigma"])
        self.initialized = bool(state["initialized"])
