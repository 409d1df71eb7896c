"""``alignscope.trl.DPOTrainer``: TRL's DPOTrainer that streams into AlignScope, and can train β-DPO.

    from alignscope.trl import DPOTrainer, BetaDPO, Logging      # instead of: from trl import DPOTrainer
    trainer = DPOTrainer(model=..., args=..., ..., alignscope=Logging(url=..., token=...),
                         beta_dpo=BetaDPO())                     # beta_dpo: optional

Per micro-batch, ``compute_loss`` lets TRL compute its loss and metrics as usual, reads the four
summed log-probs of every pair from TRL's own forward passes (alignscope.trl.capture) and, with
β-DPO, replaces TRL's loss by the engine's β-DPO loss from the engine's calibrator. With
``BetaDPO(scope="batch")`` (the default) and gradient accumulation, ``get_batch_samples`` first
scores the step's micro-batches without gradients and calibrates once over the whole global batch
(alignscope.trl.batch_scope); otherwise each GLOBAL micro-batch (gathered over ranks, like the
engine) is calibrated in its own ``compute_loss``. On steps TRL logs, the per-pair values are
gathered to the main process, which alone writes (alignscope.trl.recorder). The dashboard's Stop
sets ``control.should_training_stop`` on every rank at the next step. Tested with TRL 1.16.0 and
transformers 5.25.
"""

from __future__ import annotations

import traceback
from typing import Any

import torch
import trl
from accelerate.utils import gather_object
from transformers import TrainerCallback

from alignscope.trl.batch_scope import PAIRS_KEY, SLOT_KEY, StepPlan, score_step
from alignscope.trl.capture import LogProbCapture, Scores, beta_dpo_loss
from alignscope.trl.options import BetaDPO, Logging
from alignscope.trl.recorder import Recorder, json_safe
from worker.alignment.beta_dpo import BetaCalibrator, Calibration

TEXT_FIELDS = ("prompt", "chosen", "rejected")


class DPOTrainer(trl.DPOTrainer):
    """``trl.DPOTrainer`` plus ``alignscope`` (where to log; None: ALIGNSCOPE_URL or offline) and
    ``beta_dpo`` (None: TRL's loss unchanged)."""

    def __init__(self, *args: Any, alignscope: Logging | None = None, beta_dpo: BetaDPO | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.alignscope_options = alignscope or Logging()
        self.beta_dpo = beta_dpo
        _check_supported(self, beta_dpo)
        models = [self.model] + ([self.ref_model] if self.ref_model is not None else [])
        self.capture = LogProbCapture(models)
        generator = torch.Generator().manual_seed(beta_dpo.seed) if beta_dpo else None
        self.calibrator = BetaCalibrator(beta_dpo.settings(self.beta), generator) if beta_dpo else None
        self.data_collator = _WithPairs(self.data_collator, getattr(self.processing_class, "eos_token", None))
        self.step_plan: StepPlan | None = None  # scope batch: the current step's one calibration
        self.recorder: Recorder | None = None
        self.stopped_by_dashboard = False
        if self.accelerator.is_main_process:
            self.recorder = Recorder(self.alignscope_options, _name(self.args), self._run_config(),
                                     {"world_size": self.accelerator.num_processes})  # fmt: skip
        self.add_callback(_AlignScopeCallback(self))

    # ------------------------------------------------------------------ TRL's hooks

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self._signature_columns is not None:
            self._signature_columns = [*self._signature_columns, *TEXT_FIELDS]

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> tuple[list, Any]:
        """transformers' micro-batches of one optimizer step; with β-DPO scope batch and more than one
        of them, scored and calibrated once first (alignscope.trl.batch_scope)."""
        batches, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        self.step_plan = None
        if self.beta_dpo is not None and self.beta_dpo.scope == "batch" and len(batches) > 1:
            batches, self.step_plan = score_step(self, batches)
        return batches, num_items_in_batch

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
        texts = inputs.pop(PAIRS_KEY, None)
        pairs = texts.rows if texts is not None else []
        slot = inputs.pop(SLOT_KEY, None)
        plan = self.step_plan if slot is not None else None
        self.capture.start()
        precomputed = self.precompute_ref_logps
        self.precompute_ref_logps = precomputed or plan is not None  # TRL reads the pre-pass's reference
        try:
            result = super()._compute_loss(model, inputs, return_outputs)
        finally:
            self.precompute_ref_logps = precomputed
        scores = self.capture.scores(inputs)
        train = self.model.training
        calibration, offset = None, self._rank_offset(scores, plan, slot)
        if self.calibrator is not None:
            calibration, loss = self._beta_dpo(scores, train, plan, offset)
            result = (loss, result[1]) if return_outputs else loss
        if train and self._records_wanted():
            self._record(scores, calibration, pairs, offset)
        return result

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """TRL's train; the AlignScope run ends as succeeded, stopped (from the dashboard) or failed."""
        try:
            output = super().train(*args, **kwargs)
        except BaseException as exc:
            if self.recorder is not None:
                self.recorder.run.fail("".join(traceback.format_exception(exc))[-20_000:],
                                       self.alignscope_options.finish_timeout_s)  # fmt: skip
            raise
        if self.recorder is not None:
            status = "stopped" if self.stopped_by_dashboard else "succeeded"
            self.recorder.run.finish(status, timeout_s=self.alignscope_options.finish_timeout_s)
        return output

    # ------------------------------------------------------------------ β-DPO and records

    def _beta_dpo(
        self, scores: Scores, train: bool, plan: StepPlan | None, offset: int
    ) -> tuple[Calibration, torch.Tensor]:
        """The calibration this micro-batch's pairs belong to (the step's ``plan``, else the engine's
        calibration of the global micro-batch, made here) and this rank's share of its loss."""
        assert self.calibrator is not None
        logits = scores.logits()
        if plan is None:
            calibration = self.calibrator.calibrate(self.accelerator.gather(logits.detach()), train=train)
            accumulation = 1
        else:  # transformers divides by the micro-batch count unless the loss says it scaled itself
            calibration = plan.calibration
            accumulation = 1 if self.loss_is_scaled_for_ga else plan.accumulation
        local = slice(offset, offset + logits.shape[0])
        beta = calibration.beta.to(logits.dtype)
        beta = beta[local] if beta.dim() else beta
        keep = calibration.keep[local].to(logits.dtype)
        world = self.accelerator.num_processes
        return calibration, beta_dpo_loss(scores, beta, keep, calibration.kept, world, accumulation)

    def _rank_offset(self, scores: Scores, plan: StepPlan | None, slot: int | None) -> int:
        """Where this rank's pairs start in their calibration (the global micro-batch, or the step)."""
        size = scores.policy_chosen.shape[0]
        if plan is None or slot is None:
            return self.accelerator.process_index * size
        return plan.offset(slot, self.accelerator.process_index, size)

    def _records_wanted(self) -> bool:
        if not self.alignscope_options.pair_records:
            return False
        step = self.state.global_step + 1  # the update this micro-batch belongs to
        every = max(int(self.state.logging_steps or 1), 1)
        last = self.state.max_steps > 0 and step >= self.state.max_steps
        return step % every == 0 or last or (step == 1 and self.args.logging_first_step)

    def _record(
        self, scores: Scores, calibration: Calibration | None, pairs: list[tuple], offset: int
    ) -> None:
        """Gather this micro-batch's per-pair columns and texts to the main process and keep them there
        (on the device until the step is emitted: one host transfer per step; the rows are built by
        the sender thread, alignscope.trl.rows)."""
        columns = torch.stack(self._columns(scores, calibration, offset)).detach().float()
        if self.accelerator.num_processes > 1:
            columns = self.accelerator.gather(columns.T.contiguous()).T  # (C, N): ranks in order
            pairs = gather_object(list(pairs))
        if self.recorder is not None:
            self.recorder.add(self.state.global_step + 1, pairs, columns, calibration)

    def _columns(self, scores: Scores, calibration: Calibration | None, offset: int) -> list[torch.Tensor]:
        chosen = scores.policy_chosen.detach() - scores.reference_chosen
        logits = chosen - (scores.policy_rejected.detach() - scores.reference_rejected)
        n = logits.shape[0]
        if calibration is None:
            discrepancy, weight = logits, torch.ones_like(logits)
            keep, beta = torch.ones_like(logits), torch.full_like(logits, self.beta)
        else:
            local = slice(offset, offset + n)
            discrepancy = calibration.discrepancy[local].to(logits)
            weight, keep = calibration.weight[local].to(logits), calibration.keep[local].to(logits)
            beta = (
                calibration.beta[local].to(logits) if calibration.beta.dim() else calibration.beta.expand(n)
            )
        return [scores.policy_chosen.detach(), scores.policy_rejected.detach(), scores.reference_chosen,
                scores.reference_rejected, scores.chosen_tokens.to(logits), scores.rejected_tokens.to(logits),
                discrepancy, weight, keep, beta.to(logits)]  # fmt: skip

    def _run_config(self) -> dict[str, Any]:
        """What the dashboard shows: loss and β0 like a native run's, β-DPO's settings, TRL's args."""
        kinds = list(self.loss_types)
        kind = "dpo" if kinds == ["sigmoid"] else "+".join(kinds)
        config: dict[str, Any] = {"loss": {"kind": kind, "beta": self.beta}}
        config["beta_dpo"] = {
            "enabled": self.beta_dpo is not None,
            **(self.beta_dpo.model_dump() if self.beta_dpo else {}),
        }
        model = self.accelerator.unwrap_model(self.model)
        config["model"] = {"name_or_path": getattr(model.config, "name_or_path", ""),
                           "model_type": getattr(model.config, "model_type", "")}  # fmt: skip
        config["trl"] = json_safe(self.args.to_dict())
        return config


class PairTexts:
    """A micro-batch's raw (prompt, chosen, rejected) per row, in a box that transformers'
    ``_prepare_inputs`` and accelerate's ``send_to_device`` pass through untouched (they walk lists)."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[tuple[Any, Any, Any]]) -> None:
        self.rows = rows


class _WithPairs:
    """The data collator, plus each row's raw (prompt, chosen, rejected) under PAIRS_KEY.

    They are the row as the user gave it (the EOS that TRL appends to string completions is taken
    off), so their content hash (contracts.pairs, computed off the training thread by
    alignscope.trl.rows) gives the same pair the same id in a TRL run and in a native run, and the
    compare page can align them."""

    def __init__(self, collator: Any, eos: str | None) -> None:
        self.collator = collator
        self.eos = eos

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        batch[PAIRS_KEY] = PairTexts([self.texts(example) for example in examples])
        return batch

    def texts(self, example: dict[str, Any]) -> tuple[Any, Any, Any]:
        prompt, chosen, rejected = (example.get(name) for name in TEXT_FIELDS)
        if prompt is None or chosen is None or rejected is None:  # no text columns: the token ids stand in
            prompt, chosen, rejected = (str(example[f"{name}_ids"]) for name in TEXT_FIELDS)
        eos = self.eos
        if eos:
            chosen = chosen.removesuffix(eos) if isinstance(chosen, str) else chosen
            rejected = rejected.removesuffix(eos) if isinstance(rejected, str) else rejected
        return prompt, chosen, rejected


class _AlignScopeCallback(TrainerCallback):
    """Emits at TRL's train logs and turns the dashboard's stop into ``should_training_stop``."""

    def __init__(self, trainer: DPOTrainer) -> None:
        self.trainer = trainer

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any
    ) -> None:
        recorder = self.trainer.recorder
        if recorder is None or not logs or "loss" not in logs:
            return
        recorder.emit(state.global_step, logs, state.max_steps)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        recorder = self.trainer.recorder
        wanted = recorder is not None and recorder.run.stop_requested
        accelerator = self.trainer.accelerator
        if accelerator.num_processes > 1:  # every rank stops at the same step
            flag = torch.tensor([1.0 if wanted else 0.0], device=accelerator.device)
            wanted = accelerator.reduce(flag, "sum").item() > 0
        if wanted:
            self.trainer.stopped_by_dashboard = True
            control.should_training_stop = True


def _name(args: Any) -> str:
    name = getattr(args, "run_name", None) or str(args.output_dir).rstrip("/").rsplit("/", 1)[-1]
    return str(name)[:200] or "trl-dpo"


def _check_supported(trainer: trl.DPOTrainer, beta_dpo: BetaDPO | None) -> None:
    """Refuse what the records or β-DPO would get wrong, naming the TRL argument to change."""
    if trainer.ld_alpha is not None:
        raise ValueError(
            "alignscope.trl: ld_alpha is not supported (records would not be TRL's log-probs); unset it"
        )
    if beta_dpo is None:
        return
    if list(trainer.loss_types) != ["sigmoid"] or trainer.f_divergence_type != "reverse_kl":
        raise ValueError(
            "alignscope.trl: beta_dpo needs DPOConfig(loss_type=['sigmoid']) and f_divergence_type "
            "'reverse_kl' (β-DPO calibrates DPO's sigmoid loss)"
        )
    if trainer.use_weighting or trainer.aux_loss_enabled:
        raise ValueError("alignscope.trl: beta_dpo does not combine with use_weighting or the MoE aux loss")
