"""One micro-batch's objective: the configured loss, the β-DPO calibrator and the SFT term, from the four
sequence log-probs. No forward passes here (see scoring.py); the per-pair diagnostics are computed only
at log steps (step_metrics.py).

Normalisation: the loss of a micro-batch is Σ_kept ℓ_i / n_kept_global · world_size, so that after the
gradient all-reduce (an average over ranks) and the division by the number of accumulation
micro-batches, the gradient equals the single-process masked mean exactly (SCIENCE.md §E, the
"exact global masked mean" alternative to the authors' local normalisation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from contracts.config import RunConfig
from worker.alignment.beta_dpo import BetaCalibrator, Calibration, CalibratorSettings
from worker.alignment.losses import preference_loss, sft_sequence_term, sft_token_term
from worker.engine.model.scoring import PairScores


@dataclass(frozen=True)
class ObjectiveOutput:
    """loss: 0-dim, ready for backward (already scaled for accumulation and ranks).
    beta: (B,) the β applied to each local pair; keep: (B,) bool local mask; weight/discrepancy: (B,).
    calibration: the global calibration (None without β-DPO); sft: the SFT term's value (0-dim)."""

    loss: Tensor
    preference: Tensor
    sft: Tensor
    beta: Tensor
    keep: Tensor
    weight: Tensor
    discrepancy: Tensor
    calibration: Calibration | None


Gather = Callable[[Tensor], Tensor]


def calibrator_for(config: RunConfig, generator: torch.Generator) -> BetaCalibrator | None:
    """The β-DPO calibrator of ``config`` (None when β-DPO is off)."""
    bd = config.beta_dpo
    if not bd.enabled:
        return None
    settings = CalibratorSettings(
        beta0=config.beta0,
        alpha=bd.alpha,
        keep_ratio=bd.keep_ratio,
        momentum=bd.momentum,
        beta_min=bd.beta_min,
        sigma_floor=bd.sigma_floor,
        dynamic_beta=bd.dynamic_beta and config.loss.kind != "flex",
        filtering=bd.filtering,
        level=bd.level,
        paper_units=bd.discrepancy_units == "paper",
        init_from_first_batch=bd.init_from_first_batch,
    )
    return BetaCalibrator(settings, generator)


def _loss_params(config: RunConfig) -> dict[str, float]:
    loss = config.loss
    if loss.kind in ("dpo", "robust"):
        return {"label_smoothing": loss.label_smoothing}
    if loss.kind == "flex":
        return {"beta_rejected": loss.beta_rejected}
    return {}


@dataclass(frozen=True)
class SftTerm:
    """The SFT term added to the preference loss: ``weight`` (0: none) and its ``form`` ("sequence":
    the mean of per-pair terms; "token": TRL's token mean)."""

    weight: float
    form: str

    def __call__(self, policy: PairScores, zero: Tensor) -> Tensor:
        if self.weight == 0.0:
            return zero
        if self.form == "sequence":
            return sft_sequence_term(policy.chosen, self.weight).mean()
        return sft_token_term(policy.chosen, policy.chosen_tokens, self.weight)


@dataclass
class Objective:
    """A run's objective, built once from its config (``from_config``): the loss kind and its
    parameters, β0, the β-DPO calibrator (None when off; it carries EMA state, saved in checkpoints)
    and the SFT term. Calling it scores one micro-batch."""

    kind: str
    params: dict[str, float]
    beta0: float
    normalize_length: bool
    calibrator: BetaCalibrator | None
    sft_term: SftTerm

    @classmethod
    def from_config(cls, config: RunConfig, generator: torch.Generator) -> Objective:
        loss = config.loss
        return cls(
            kind=loss.kind,
            params=_loss_params(config),
            beta0=config.beta0,
            normalize_length=loss.kind == "ipo" and loss.normalize_length,
            calibrator=calibrator_for(config, generator),
            sft_term=SftTerm(config.sft.weight, config.sft.form),
        )

    def __call__(
        self,
        policy: PairScores,
        reference: PairScores,
        gather: Gather,
        rank_slice: slice,
        world_size: int,
        train: bool = True,
    ) -> ObjectiveOutput:
        """Loss of one local micro-batch of B pairs, with the β, keep mask, weights and discrepancies used.

        gather: concatenates a (B,) tensor over ranks into the global (N,) micro-batch (identity on one
        process); rank_slice: this rank's positions inside the global micro-batch.
        """
        chosen_ratio = policy.chosen - reference.chosen
        rejected_ratio = policy.rejected - reference.rejected
        if self.normalize_length:
            chosen_ratio = chosen_ratio / policy.chosen_tokens
            rejected_ratio = rejected_ratio / policy.rejected_tokens
        size = chosen_ratio.shape[0]
        discrepancy = (chosen_ratio - rejected_ratio).detach()
        if self.calibrator is None:
            calibration = None
            beta = torch.full((size,), self.beta0, dtype=chosen_ratio.dtype, device=chosen_ratio.device)
            keep = torch.ones(size, dtype=torch.bool, device=chosen_ratio.device)
            weight = torch.ones_like(beta)
            n_keep_global = float(size * world_size)
        else:
            calibration = self.calibrator.calibrate(gather(discrepancy), train=train)

            def local(values: Tensor) -> Tensor:
                return values if world_size == 1 else values[rank_slice]

            global_beta = calibration.beta.to(chosen_ratio.dtype)
            beta = local(global_beta) if global_beta.dim() else global_beta.expand(size)
            keep = local(calibration.keep)
            weight = local(calibration.weight).to(beta.dtype)
            discrepancy = local(calibration.discrepancy)
            n_keep_global = float(calibration.kept)
        per_pair = preference_loss(self.kind, chosen_ratio, rejected_ratio, beta, **self.params)
        preference = (per_pair * keep).sum() / max(n_keep_global, 1.0) * world_size
        sft = self.sft_term(policy, chosen_ratio.new_zeros(()))
        return ObjectiveOutput(
            loss=preference + sft,
            preference=preference.detach(),
            sft=sft.detach(),
            beta=beta.detach(),
            keep=keep,
            weight=weight,
            discrepancy=discrepancy,
            calibration=calibration,
        )
