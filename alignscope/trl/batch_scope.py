"""β-DPO ``scope: batch`` inside TRL: one calibration per optimizer step (docs/decisions/0041).

transformers 5.25's ``Trainer._inner_training_loop`` takes every micro-batch of an optimizer step at
once (``get_batch_samples``) before it runs ``training_step`` on each. With scope batch and more than
one micro-batch, ``score_step`` first scores them without gradients, with TRL's own calls: the
reference through ``DPOTrainer.compute_ref_log_probs`` (the function TRL precomputes reference
log-probs with) and the policy as ``DPOTrainer._compute_loss`` calls it (``model(..., labels=...,
fused_lm_head=True)``, read by the capture hook). It gathers each micro-batch's u = ρ_w − ρ_l over
ranks and calibrates ONCE on [micro-batch 0: rank 0, rank 1, …; micro-batch 1: …], the engine's order
(``worker.engine.loop.Trainer._calibrate_batch``). Each batch dict then carries its slot in the step
and its reference log-probs (``ref_chosen_logps``/``ref_rejected_logps``), so the gradient pass
skips TRL's reference forward: the pre-pass costs one no-grad policy forward per micro-batch.

Loss scaling: TRL's DPOTrainer sets ``loss_is_scaled_for_ga = False``, so transformers divides every
micro-batch's loss by ``current_gradient_accumulation_steps`` (A, the step's micro-batch count), and
DDP averages the gradients over the W ranks. A micro-batch's loss Σ_{kept, this rank} ℓ_i / n_kept · W · A
(``capture.beta_dpo_loss`` with ``accumulation`` A) therefore sums, over micro-batches and ranks, to
the gradient of Σ_{kept in the step} ℓ_i / n_kept: the masked mean over the whole global batch, as
the engine's (``worker.engine.objective``), whatever the micro-batch size. TRL's logged loss is then
that masked mean too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from trl.models.utils import disable_gradient_checkpointing

from alignscope.trl.capture import Scores
from worker.alignment.beta_dpo import Calibration

if TYPE_CHECKING:
    from alignscope.trl.trainer import DPOTrainer

SLOT_KEY = "alignscope_slot"  # a batch dict's position in its step's StepPlan
PAIRS_KEY = "alignscope_pairs"  # (pair_id, prompt, chosen, rejected) of each row (trainer._WithPairs)
NOT_MODEL_INPUTS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps", PAIRS_KEY, SLOT_KEY}


@dataclass(frozen=True)
class StepPlan:
    """The one calibration of an optimizer step; micro-batch ``slot``'s global pairs start at
    ``starts[slot]`` in it, and the step has ``accumulation`` micro-batches."""

    calibration: Calibration
    starts: list[int]
    accumulation: int

    def offset(self, slot: int, rank: int, local_size: int) -> int:
        """Where this rank's ``local_size`` pairs of micro-batch ``slot`` start in the calibration."""
        return self.starts[slot] + rank * local_size


def score_step(trainer: DPOTrainer, batches: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], StepPlan]:
    """The step's batches, prepared for the device and carrying their slot and reference log-probs,
    and the step's StepPlan (the calibrator's EMA and generator advance once)."""
    assert trainer.calibrator is not None
    model = trainer.model_wrapped
    model.train()  # as training_step will: the scores are the gradient pass's
    logits: list[torch.Tensor] = []
    starts: list[int] = []
    prepared: list[dict[str, Any]] = []
    position = 0
    checkpointing = disable_gradient_checkpointing(trainer.model, trainer.args.gradient_checkpointing_kwargs)
    with torch.no_grad(), checkpointing, trainer.compute_loss_context_manager():  # as TRL's reference pass
        for slot, batch in enumerate(batches):
            inputs = trainer._prepare_inputs(batch)
            scores = _score(trainer, model, inputs)
            gathered = trainer.accelerator.gather(scores.logits())
            starts.append(position)
            position += gathered.shape[0]
            logits.append(gathered)
            inputs[SLOT_KEY] = slot  # its reference log-probs are in it too (_score)
            prepared.append(inputs)
    calibration = trainer.calibrator.calibrate(torch.cat(logits), train=True)
    return prepared, StepPlan(calibration, starts, len(batches))


def _score(trainer: DPOTrainer, model: Any, inputs: dict[str, Any]) -> Scores:
    """One micro-batch's Scores by TRL's reference and policy calls (no gradients); ``inputs`` keeps
    the reference log-probs for the gradient pass."""
    if "ref_chosen_logps" not in inputs:  # TRL did not precompute them (precompute_ref_log_probs)
        reference = trainer.ref_model if trainer.ref_model is not None else trainer.model
        chosen, rejected = trainer.compute_ref_log_probs(reference, inputs)
        inputs["ref_chosen_logps"], inputs["ref_rejected_logps"] = chosen, rejected
    kwargs = {k: v for k, v in inputs.items() if k not in NOT_MODEL_INPUTS}
    labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
    trainer.capture.start()
    model(**kwargs, use_cache=False, labels=labels, fused_lm_head=True)
    return trainer.capture.scores(inputs)
