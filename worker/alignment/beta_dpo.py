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
import sys
from dataclasses import dataclass

import torch
from torch import Tensor

_FLOOR_TOLERANCE = 1e-9  # floor(N·ρ) must not lose a pair to 0.29·100 = 28.999999999999996
_TINY = sys.float_info.min  # smallest normal float64: U = 0 would make −log(−log U) infinite


@dataclass(frozen=True)
class _Place:
    """Where the calibration's tensors go: the logits' device, in their dtype (at least float32)."""

    dtype: torch.dtype
    device: torch.device

    def tensor(self, values: float | list[float]) -> Tensor:
        return torch.tensor(values, dtype=self.dtype, device=self.device)


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
    kept: int  # number of kept pairs (Σ keep)


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
    keep = _gumbel_keep(log_weights.tolist(), k, generator)
    return torch.tensor(keep, dtype=torch.bool, device=log_weights.device)


def _gumbel_keep(log_weights: list[float], k: int, generator: torch.Generator | None) -> list[bool]:
    """``gumbel_top_k`` on host floats (N is a micro-batch: a few host operations beat dozens of
    tiny tensor kernels); the same single float64 ``torch.rand(N)`` draw."""
    n = len(log_weights)
    device = generator.device if generator is not None else None
    uniforms = torch.rand(n, generator=generator, dtype=torch.float64, device=device).tolist()
    keys = [lw - math.log(-math.log(max(u, _TINY))) for lw, u in zip(log_weights, uniforms, strict=True)]
    keep = [False] * n
    for index in sorted(range(n), key=keys.__getitem__, reverse=True)[:k]:
        keep[index] = True
    return keep


class BetaCalibrator:
    """Holds the EMA state (M0, σ) and turns each micro-batch's logits u into a Calibration.

    ``generator`` draws the filter's Gumbel noise; give every rank a generator with the same seed so that
    ranks agree on the kept pairs. Its state is not part of ``state_dict`` (checkpoint it with the RNGs).

    The arithmetic runs on host floats (float64) after one transfer of the N logits: N is a
    micro-batch, and a few dozen scalar operations cost less than as many tensor kernels. The
    returned tensors are on the logits' device, in their dtype (at least float32).
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
        dtype = torch.promote_types(logits.dtype, torch.float32)
        values = logits.detach().to(dtype)
        discrepancy = values.tolist()
        if settings.paper_units:
            discrepancy = [settings.beta0 * u for u in discrepancy]
        if train:
            self._update_ema(discrepancy)
        sigma_eff = max(self.sigma, settings.sigma_floor)
        log_weight = [-0.5 * ((m - self.m0) / sigma_eff) ** 2 for m in discrepancy]
        n = len(discrepancy)
        weight = [math.exp(lw) for lw in log_weight] if settings.filtering else [1.0] * n
        if settings.filtering and train:
            keep = _gumbel_keep(log_weight, keep_count(n, settings.keep_ratio), self.generator)
        else:
            keep = [True] * n
        ready = None if settings.paper_units else values  # the tensor of ``discrepancy`` when it is u itself
        return self._finish(discrepancy, keep, weight, _Place(dtype, logits.device), ready)

    def _update_ema(self, discrepancy: list[float]) -> None:
        """EMA of the batch mean and unbiased batch std of M, from all N pairs (std of one pair = 0)."""
        n = len(discrepancy)
        batch_mean = sum(discrepancy) / n
        squares = sum((m - batch_mean) ** 2 for m in discrepancy)
        batch_std = math.sqrt(squares / (n - 1)) if n > 1 else 0.0
        momentum = self.settings.momentum
        if self.settings.init_from_first_batch and not self.initialized:
            self.m0, self.sigma = batch_mean, batch_std
        else:
            self.m0 = momentum * self.m0 + (1.0 - momentum) * batch_mean
            self.sigma = momentum * self.sigma + (1.0 - momentum) * batch_std
        self.initialized = True

    def _finish(
        self,
        discrepancy: list[float],
        keep: list[bool],
        weight: list[float],
        place: _Place,
        ready: Tensor | None,
    ) -> Calibration:
        """β from the kept pairs and the summary scalars; the per-pair lists become tensors at ``place``."""
        settings = self.settings
        kept = [m for m, k in zip(discrepancy, keep, strict=True) if k]
        m_bar_kept = sum(kept) / max(len(kept), 1)
        dropped = [m for m, k in zip(discrepancy, keep, strict=True) if not k]
        if settings.level == "instance" and settings.dynamic_beta:
            beta = place.tensor(
                [
                    max(settings.beta0 * (1.0 + settings.alpha * (m - self.m0)), settings.beta_min)
                    for m in discrepancy
                ]
            )
        elif settings.level == "instance":
            beta = place.tensor([settings.beta0] * len(discrepancy))
        else:
            beta_value = settings.beta0
            if settings.dynamic_beta:
                beta_value = max(
                    settings.beta0 * (1.0 + settings.alpha * (m_bar_kept - self.m0)), settings.beta_min
                )
            beta = place.tensor(beta_value)
        return Calibration(
            beta=beta,
            keep=torch.tensor(keep, dtype=torch.bool, device=place.device),
            weight=place.tensor(weight),
            discrepancy=place.tensor(discrepancy) if ready is None else ready,
            m0=self.m0,
            sigma=self.sigma,
            m_bar_kept=m_bar_kept,
            m_bar_all=sum(discrepancy) / len(discrepancy),
            filtered_high=sum(1 for m in dropped if m > self.m0),
            filtered_low=sum(1 for m in dropped if m < self.m0),
            kept=len(kept),
        )

    def state_dict(self) -> dict[str, float | bool]:
        """The EMA state, for checkpoints."""
        return {"m0": self.m0, "sigma": self.sigma, "initialized": self.initialized}

    def load_state_dict(self, state: dict[str, float | bool]) -> None:
        """Restore what ``state_dict`` returned."""
        self.m0 = float(state["m0"])
        self.sigma = float(state["sigma"])
        self.initialized = bool(state["initialized"])
