"""The training loop: ``train(config, sink, should_stop)`` → RunSummary.

A step is one optimizer update over ``optim.batch_size`` pairs, split into micro-batches of
``optim.micro_batch_size`` pairs (divided among processes). Metrics are emitted at every
``log_every``-th step and at the last; per-pair records at each of those steps. A non-finite loss or
gradient stops the run as failed before the update is applied, with the step's metrics emitted.
``should_stop`` is polled at every step; a stop writes a checkpoint and returns "stopped".
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from contracts import metric_keys as mk
from contracts.config import RunConfig
from contracts.events import MetricsSink
from worker.alignment.beta_dpo import Calibration
from worker.alignment.diagnostics import ThreeDMonitor
from worker.engine import distributed as dist
from worker.engine.checkpoint import (
    has_checkpoint,
    is_sharded,
    load_checkpoint,
    load_sharded,
    save_checkpoint,
    save_sharded,
)
from worker.engine.data.pairs import PairSampler
from worker.engine.evaluation.hooks import EvalHooks
from worker.engine.model import lora, parallel
from worker.engine.model.families import Family, build_family
from worker.engine.model.loading import load_policy
from worker.engine.model.scoring import PairScores
from worker.engine.objective import BatchCalibration, Objective, ObjectiveOutput
from worker.engine.optimizers import make_optimizer, warmup_schedule
from worker.engine.sinks import NullSink
from worker.engine.step_metrics import (
    ALERT_KEYS,
    MicroBatchOutcome,
    StepAccumulator,
    pair_records,
    points_for,
    signal_values,
    step_table,
    step_values,
)

Status = Literal["succeeded", "failed", "stopped"]
Scored = tuple[Any, PairScores]  # a collated micro-batch and its reference scores


@dataclass
class RunSummary:
    """How a run ended: status, completed optimizer steps, the last logged metrics, error if any."""

    status: Status
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    checkpoint: str | None = None
    alerts: list[str] = field(default_factory=list)
    export: str | None = None


def seed_everything(seed: int) -> None:
    """Seeds python and torch (all devices)."""
    random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """One run's state: family, optimizer, schedule, calibrator, 3D monitor and data position."""

    def __init__(self, config: RunConfig, sink: MetricsSink, checkpoint_dir: Path | None) -> None:
        self.config = config
        self.world = dist.init_world("cpu" if config.model.source == "toy" else config.device)
        self.sink = sink if self.world.is_main else NullSink()
        self.checkpoint_dir = checkpoint_dir
        seed_everything(config.seed)
        self.sink.status("loading model and data", 0.0)
        self.family: Family = build_family(config, self.world)
        self.parallel = self.family.parallel
        self.optimizer = make_optimizer(config.optim, self.parallel.parameters())
        self.scheduler = warmup_schedule(self.optimizer, config.optim.warmup_steps)
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.objective = Objective.from_config(config, self.generator)
        self.calibrator = self.objective.calibrator
        diag = config.diagnostics
        self.monitor = ThreeDMonitor(diag.window, diag.kappa, diag.consecutive, diag.slope_eps, diag.drawdown)
        self.sampler = PairSampler(self.family.train_items, seed=config.seed, shuffle=config.data.shuffle)
        self.step = 0
        self.micro_global = config.optim.micro_batch_size
        if self.micro_global % self.world.size:
            raise ValueError("optim.micro_batch_size must be divisible by the number of processes")
        if self.parallel.strategy == "fsdp" and config.generates_on_rank_zero:  # auto chose fsdp
            raise ValueError(
                "this model is sharded (distributed.strategy 'auto' chose fsdp: it does not fit one GPU "
                "for ddp), and evaluation/probes generate on rank 0 alone: turn them off for this run"
            )
        self.hooks = EvalHooks.build(config, self.family, self.sink, self.world)
        if has_checkpoint(checkpoint_dir):
            self._restore()
        else:
            self.sink.texts(self.family.texts())
            self.hooks.prepare()

    # ------------------------------------------------------------------------------ checkpoints
    def _state(self) -> dict:
        return {
            "step": self.step,
            **({} if self.parallel.strategy == "fsdp" else {"optimizer": self.optimizer.state_dict()}),
            "scheduler": self.scheduler.state_dict(),
            "calibrator": self.calibrator.state_dict() if self.calibrator else {},
            "monitor": self.monitor.state_dict(),
            "sampler": self.sampler.state_dict(),
            "generator": self.generator.get_state(),
            "hooks": self.hooks.state_dict(),
        }

    def save(self) -> str | None:
        """Writes a checkpoint (main rank only) and returns its folder."""
        if self.checkpoint_dir is None:
            return None
        try:
            self.sink.flush()  # a run resumed from this checkpoint then has every metric up to it
        except Exception as exc:  # the store is down: keep training; the sink back-fills later
            self.sink.status(f"checkpoint at step {self.step} written before its metrics were stored: {exc}")
        if self.parallel.strategy == "fsdp":
            save_sharded(self.checkpoint_dir, self.parallel.scorer, self.optimizer, self._state(), self.world)
        elif self.world.is_main:
            save_checkpoint(self.checkpoint_dir, self._weights(), self._state())
        if self.world.is_main:
            try:
                self.sink.checkpointed(str(self.checkpoint_dir), self.step)
            except Exception as exc:  # the store is down: the supervisor's heartbeat records it later
                self.sink.status(f"checkpoint at step {self.step} not yet recorded: {exc}")
        return str(self.checkpoint_dir)

    def export(self) -> str | None:
        """Writes a finished LoRA run's export (``model.lora.export``) into its checkpoint folder."""
        spec = self.config.model.lora
        if spec is None or spec.export == "none" or self.checkpoint_dir is None:
            return None
        folder = self.checkpoint_dir / spec.export
        if self.parallel.strategy == "fsdp":  # the live adapters are sharded: rebuild the model on rank 0
            adapters = parallel.full_trainable_state(self.parallel)
            if self.world.is_main:
                base, _ = load_policy(self.config.model, self.config.seed)
                lora.export(lora.attach(base, spec), spec, self.family.tokenizer, folder, adapters)
        elif self.world.is_main:
            lora.export(self.family.peft, spec, self.family.tokenizer, folder)
        dist.barrier(self.world)
        return str(folder)

    def _weights(self) -> dict[str, Tensor]:
        """What a checkpoint keeps of the policy: its adapters with LoRA, else all of it."""
        policy = self.family.policy
        return lora.trainable_state(policy) if self.family.peft else policy.state_dict()

    def _restore(self) -> None:
        assert self.checkpoint_dir is not None
        if is_sharded(self.checkpoint_dir):
            state = load_sharded(self.checkpoint_dir, self.parallel.scorer, self.optimizer)
        else:
            tensors, state = load_checkpoint(self.checkpoint_dir)
            if self.family.peft:
                lora.load_trainable_state(self.family.policy, tensors)
            else:
                self.family.policy.load_state_dict(tensors)
            self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.calibrator is not None:
            self.calibrator.load_state_dict(state["calibrator"])
        self.monitor.load_state_dict(state["monitor"])
        self.sampler.load_state_dict(state["sampler"])
        self.generator.set_state(state["generator"])
        self.hooks.load_state_dict(state.get("hooks", {}))
        self.sink.status(f"resumed from step {self.step}", self.step / self.config.optim.max_steps)

    # ------------------------------------------------------------------------------- one step
    def _micro_batch(
        self, items: list, batch_calibration: BatchCalibration | None, scored: Scored | None = None
    ) -> tuple[ObjectiveOutput, MicroBatchOutcome]:
        """One gradient micro-batch; ``scored`` is its collated batch and reference scores from the
        batch-scope scoring pass (so neither is computed twice)."""
        if scored is None:
            batch = self.family.collate(items[self.world.shard(self.micro_global)])
            scored = (batch, self.family.reference_scores(batch))
        batch, reference = scored
        shard = self.world.shard(self.micro_global)
        policy = self.family.policy_scores(batch)
        output = self.objective(
            policy, reference, self._gather, shard, self.world.size, batch=batch_calibration
        )
        outcome = MicroBatchOutcome([p.pair_id for p in items], output, policy, reference)
        return output, self._gathered(outcome)

    def _gather(self, values: Tensor) -> Tensor:
        return dist.gather_cat(values, self.world)

    def _calibrate_batch(self, micro_batches: list[list]) -> tuple[Calibration | None, list[Scored | None]]:
        """Scope ``batch`` with accumulation: one calibration over the whole step's pairs, from a
        no-grad policy scoring pass (SCIENCE.md product decision 6), and each micro-batch's collated
        batch and reference scores for its gradient pass. (None, [None…]) when each micro-batch
        calibrates itself (scope ``micro_batch``, or a single micro-batch, which is the whole batch)."""
        if self.calibrator is None or self.config.beta_dpo.scope != "batch" or len(micro_batches) == 1:
            return None, [None] * len(micro_batches)
        shard = self.world.shard(self.micro_global)
        logits, scored = [], []
        with torch.no_grad():
            for items in micro_batches:
                batch = self.family.collate(items[shard])
                reference = self.family.reference_scores(batch)
                chosen, rejected = self.objective.log_ratios(self.family.policy_scores(batch), reference)
                logits.append(dist.gather_cat(chosen - rejected, self.world))
                scored.append((batch, reference))
        return self.calibrator.calibrate(torch.cat(logits)), scored

    def _gathered(self, outcome: MicroBatchOutcome) -> MicroBatchOutcome:
        """The outcome with every per-pair tensor concatenated over ranks."""
        if self.world.size == 1:
            return outcome

        def cat(value: object) -> object:
            return dist.gather_cat(value.detach(), self.world) if isinstance(value, Tensor) else value

        out = outcome.output
        output = dataclasses.replace(
            out,
            keep=cat(out.keep),
            beta=cat(out.beta),
            weight=cat(out.weight),
            discrepancy=cat(out.discrepancy),
            unmasked=cat(out.unmasked.reshape(1)).mean(),
        )
        scores = [
            PairScores(*(cat(getattr(s, f.name)) for f in dataclasses.fields(s)))
            for s in (outcome.policy, outcome.reference)
        ]
        return MicroBatchOutcome(outcome.pair_ids, output, scores[0], scores[1])

    def run_step(self) -> tuple[StepAccumulator, Tensor, Tensor]:
        """Forward/backward over the step's micro-batches; returns (outcomes, mean loss, grad norm).

        The update is NOT applied yet (see ``apply``)."""
        accumulation = self.config.optim.batch_size // self.micro_global
        acc = StepAccumulator()
        total = torch.zeros((), device=self.world.device)
        micro_batches = [self.sampler.next_micro_batch(self.micro_global) for _ in range(accumulation)]
        calibration, scored = self._calibrate_batch(micro_batches)
        for index, items in enumerate(micro_batches):
            at = None
            if calibration is not None:
                at = BatchCalibration(calibration, index * self.micro_global, accumulation)
            with self.parallel.accumulating(last=index == accumulation - 1):
                output, outcome = self._micro_batch(items, at, scored[index])
                (output.loss / accumulation).backward()
            total = total + output.loss.detach() / accumulation
            acc.add(outcome)
        loss = dist.gather_cat(total.reshape(1), self.world).mean()
        grad_norm = self.parallel.clip_grad_norm(self.config.optim.max_grad_norm or float("inf"))
        return acc, loss, grad_norm

    def apply(self) -> None:
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1

    # ------------------------------------------------------------------------------ emission
    def emit(
        self, step: int, acc: StepAccumulator, loss: Tensor, grad_norm: Tensor, seconds: float
    ) -> dict[str, float]:
        """Emits the step's metric points (and pair records) and returns the scalars."""
        table = step_table(acc, loss, grad_norm, self.config.beta0)
        values = step_values(table, [o.output.calibration for o in acc.outcomes])
        values[mk.TRAIN_LR] = self.scheduler.get_last_lr()[0]
        values[mk.TRAIN_EXAMPLES_PER_SECOND] = self.config.optim.batch_size / max(seconds, 1e-9)
        values.update(self.family.extra_metrics())
        signals = self.monitor.update(
            step,
            values[mk.LOGRATIO_CHOSEN_PER_TOKEN],
            values[mk.LOGRATIO_REJECTED_PER_TOKEN],
            values[mk.PAIR_MASS],
        )
        values.update(signal_values(signals))
        for alert in signals.alerts:
            values[ALERT_KEYS[alert.name]] = 1.0
            self.sink.status(f"alert {alert.name} at step {alert.step}: {alert.message}", None)
        values[mk.PROGRESS] = step / self.config.optim.max_steps
        self.sink.points(points_for(step, values))
        if self.config.diagnostics.pair_records:
            self.sink.pairs(pair_records(step, acc, table))
        return values


def train(
    config: RunConfig,
    sink: MetricsSink,
    should_stop: Callable[[], bool] = lambda: False,
    checkpoint_dir: Path | None = None,
) -> RunSummary:
    """Trains ``config`` to ``optim.max_steps``, resuming from ``checkpoint_dir`` when it holds one."""
    trainer = Trainer(config, sink, checkpoint_dir)
    max_steps = config.optim.max_steps
    values: dict[str, float] = {}
    try:
        while trainer.step < max_steps:
            started = time.perf_counter()
            acc, loss, grad_norm = trainer.run_step()
            step = trainer.step + 1
            finite = bool(torch.isfinite(loss) & torch.isfinite(grad_norm))
            if not finite or step % config.log_every == 0 or step == max_steps:
                values = trainer.emit(step, acc, loss, grad_norm, time.perf_counter() - started)
            if not finite:
                message = (
                    f"non-finite loss or gradient at step {step} (loss={float(loss)}); update not applied"
                )
                trainer.sink.status(f"failed: {message}", step / max_steps)
                return RunSummary("failed", trainer.step, values, message, alerts=_alerts(trainer))
            trainer.apply()
            trainer.sink.status(f"step {step}/{max_steps}", step / max_steps)
            trainer.hooks.after_step(step, final=step == max_steps)
            every = config.checkpoint_every
            if every and step % every == 0:
                trainer.save()
            if dist.any_rank(should_stop(), trainer.world) and trainer.step < max_steps:
                path = trainer.save()
                trainer.sink.status(f"stopped at step {trainer.step}", trainer.step / max_steps)
                return RunSummary("stopped", trainer.step, values, None, path, _alerts(trainer))
        path = trainer.save()
        exported = trainer.export()
        trainer.sink.status("finished", 1.0)
        return RunSummary("succeeded", trainer.step, values, None, path, _alerts(trainer), exported)
    finally:
        dist.shutdown(trainer.world)


def _alerts(trainer: Trainer) -> list[str]:
    return [f"{a.name}@{a.step}" for a in trainer.monitor.fired]
