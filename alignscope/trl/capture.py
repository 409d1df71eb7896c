"""What AlignScope reads from TRL's DPO forward passes without changing them.

TRL 1.16's ``DPOTrainer._compute_loss`` calls the policy (and the reference model, unless reference
log-probs were precomputed) as ``model(..., labels=..., fused_lm_head=True)`` and sums
``outputs.log_probs[:, -seq_len:]`` over the sequence. A forward hook on each model keeps those
per-token log-probs (the policy's with their graph, for β-DPO's loss), so the sums here are TRL's
own values, to the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Scores:
    """One local micro-batch of B pairs: summed log-probs (B,) and completion token counts (B,)."""

    policy_chosen: Tensor
    policy_rejected: Tensor
    reference_chosen: Tensor
    reference_rejected: Tensor
    chosen_tokens: Tensor
    rejected_tokens: Tensor

    def logits(self) -> Tensor:
        """u = ρ_w − ρ_l per pair (B,), with the policy's graph."""
        return (self.policy_chosen - self.reference_chosen) - (self.policy_rejected - self.reference_rejected)


class LogProbCapture:
    """Forward hooks on the policy and the reference model that keep the per-token log-probs of
    their fused-head calls while ``active``."""

    def __init__(self, models: list[nn.Module]) -> None:
        self.active = False
        self.outputs: list[Tensor] = []
        self.handles = []
        for model in {id(m): m for m in models}.values():
            self.handles.append(model.register_forward_hook(self._hook, with_kwargs=True))

    def _hook(self, module: nn.Module, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        if self.active and kwargs.get("fused_lm_head") and getattr(output, "log_probs", None) is not None:
            self.outputs.append(output.log_probs)

    def start(self) -> None:
        self.outputs = []
        self.active = True

    def scores(self, inputs: dict[str, Any]) -> Scores:
        """The micro-batch's Scores from the captured calls: the policy's first, then the reference's
        (or the precomputed ``ref_*_logps`` of the batch)."""
        self.active = False
        shift_mask = inputs["completion_mask"][..., 1:]
        seq_len = shift_mask.size(1)
        sums = [logps[:, -seq_len:].sum(dim=1) for logps in self.outputs]
        policy_chosen, policy_rejected = sums[0].chunk(2, dim=0)
        if "ref_chosen_logps" in inputs:
            reference_chosen, reference_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            reference_chosen, reference_rejected = sums[1].detach().chunk(2, dim=0)
        chosen_tokens, rejected_tokens = shift_mask.sum(dim=1).chunk(2, dim=0)
        return Scores(policy_chosen, policy_rejected, reference_chosen, reference_rejected,
                      chosen_tokens, rejected_tokens)  # fmt: skip

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def beta_dpo_loss(
    scores: Scores, beta: Tensor, keep: Tensor, kept_global: int, world_size: int, accumulation: int = 1
) -> Tensor:
    """Σ_kept −log σ(β·u_i) / n_kept_global · world_size · accumulation over this rank's pairs,
    u = ρ_w − ρ_l. After DDP's gradient average over ranks and transformers' division by the step's
    micro-batch count, the calibration's pairs (a global micro-batch with ``accumulation`` 1, or the
    whole optimizer step with scope batch) get the gradient of their masked mean (as in the engine)."""
    per_pair = -torch.nn.functional.logsigmoid(beta * scores.logits())
    return (per_pair * keep).sum() / max(kept_global, 1) * (world_size * accumulation)
