"""Turning one optimizer step's micro-batch outputs into metric points and per-pair records.

Tensors are accumulated on the device during the step and moved to the host once, at a log step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from contracts import metric_keys as mk
from contracts.events import MetricPoint, PairRecord
from worker.alignment.diagnostics import StepSignals
from worker.engine.objective import ObjectiveOutput, PairScores


@dataclass
class MicroBatchOutcome:
    """What one global micro-batch contributes to the step (tensors gathered over ranks, (N,))."""

    pair_ids: list[str]
    output: ObjectiveOutput
    policy: PairScores
    reference: PairScores


@dataclass
class StepAccumulator:
    """The micro-batches of one optimizer step."""

    outcomes: list[MicroBatchOutcome] = field(default_factory=list)

    def add(self, outcome: MicroBatchOutcome) -> None:
        self.outcomes.append(outcome)

    def cat(self, name: str) -> Tensor:
        """A per-pair diagnostics field concatenated over the step's micro-batches."""
        return torch.cat([getattr(o.output.diagnostics, name) for o in self.outcomes])


def _mean(tensor: Tensor) -> Tensor:
    return tensor.float().mean()


def step_scalars(acc: StepAccumulator, loss: Tensor, grad_norm: Tensor) -> dict[str, Tensor]:
    """The per-step batch means of SCIENCE.md §A.4 and §C.5 as 0-dim tensors (no host transfer)."""
    margin = acc.cat("margin")
    chosen_ratio = acc.cat("chosen_logratio")
    keep = torch.cat([o.output.keep for o in acc.outcomes])
    betas = torch.cat([o.output.beta for o in acc.outcomes])
    scalars = {
        mk.TRAIN_LOSS: loss,
        mk.TRAIN_SFT_LOSS: torch.stack([o.output.sft for o in acc.outcomes]).mean(),
        mk.TRAIN_GRAD_NORM: grad_norm,
        mk.TRAIN_BETA: _mean(betas),
        mk.REWARDS_CHOSEN: _mean(acc.cat("chosen_reward")),
        mk.REWARDS_REJECTED: _mean(acc.cat("rejected_reward")),
        mk.REWARDS_MARGIN: _mean(margin),
        mk.REWARDS_ACCURACY: _mean(margin > 0),
        mk.LOGPS_CHOSEN: _mean(torch.cat([o.policy.chosen.detach() for o in acc.outcomes])),
        mk.LOGPS_REJECTED: _mean(torch.cat([o.policy.rejected.detach() for o in acc.outcomes])),
        mk.LOGRATIO_CHOSEN_PER_TOKEN: _mean(acc.cat("chosen_logratio_per_token")),
        mk.LOGRATIO_REJECTED_PER_TOKEN: _mean(acc.cat("rejected_logratio_per_token")),
        mk.CHOSEN_BELOW_REFERENCE: _mean(chosen_ratio < 0),
        mk.GRAD_LOG_RATIO: _mean(acc.cat("grad_log_ratio")),
        mk.GRAD_WEIGHT: _mean(acc.cat("dpo_weight")),
        mk.PAIR_MASS: _mean(acc.cat("pair_mass")),
        mk.BDPO_KEPT_FRACTION: _mean(keep),
    }
    tokens = torch.cat([torch.cat([o.policy.chosen_tokens, o.policy.rejected_tokens]) for o in acc.outcomes])
    scalars[mk.PAIR_MASS_PER_TOKEN] = scalars[mk.PAIR_MASS] / _mean(tokens).clamp(min=1.0)
    last = acc.outcomes[-1].output.calibration
    if last is not None:
        calibrations = [o.output.calibration for o in acc.outcomes if o.output.calibration is not None]
        scalars[mk.BDPO_M0] = torch.tensor(last.m0)
        scalars[mk.BDPO_SIGMA] = torch.tensor(last.sigma)
        scalars[mk.BDPO_M_BAR_KEPT] = torch.tensor(
            sum(c.m_bar_kept for c in calibrations) / len(calibrations)
        )
        scalars[mk.BDPO_M_BAR_ALL] = torch.tensor(sum(c.m_bar_all for c in calibrations) / len(calibrations))
        scalars[mk.BDPO_FILTERED_HIGH] = torch.tensor(float(sum(c.filtered_high for c in calibrations)))
        scalars[mk.BDPO_FILTERED_LOW] = torch.tensor(float(sum(c.filtered_low for c in calibrations)))
    return scalars


def to_host(scalars: dict[str, Tensor]) -> dict[str, float]:
    """One host transfer for all of a step's scalars."""
    keys = list(scalars)
    values = torch.stack([scalars[k].detach().float().reshape(()).cpu() for k in keys]).tolist()
    return dict(zip(keys, values, strict=True))


def signal_values(signals: StepSignals) -> dict[str, float]:
    """The 3D monitor's per-step signals under their metric keys."""
    return {
        mk.SLOPE_CHOSEN: signals.slope_chosen,
        mk.SLOPE_REJECTED: signals.slope_rejected,
        mk.D1_RATE: signals.drastic_drop_rate,
        mk.REJECTED_SHARE: signals.rejected_share,
        mk.CHOSEN_DRAWDOWN: signals.chosen_drawdown,
    }


ALERT_KEYS = {"drastic_drop": mk.ALERT_D1, "degradation": mk.ALERT_D2, "dispersion": mk.ALERT_D3}


def points_for(step: int, values: dict[str, float]) -> list[MetricPoint]:
    """MetricPoints at ``step`` stamped with the current wall time (NaN kept)."""
    now = time.time()
    return [MetricPoint(key, step, float(value), now) for key, value in values.items()]


def pair_records(step: int, acc: StepAccumulator) -> list[PairRecord]:
    """Per-pair rows of every micro-batch of the step (values used in that micro-batch's loss)."""
    records: list[PairRecord] = []
    for index, outcome in enumerate(acc.outcomes):
        out = outcome.output
        calibration = out.calibration
        m0 = calibration.m0 if calibration is not None else math.nan
        sigma = calibration.sigma if calibration is not None else math.nan
        columns = (
            torch.stack(
                [
                    outcome.policy.chosen.detach().float(),
                    outcome.policy.rejected.detach().float(),
                    outcome.reference.chosen.float(),
                    outcome.reference.rejected.float(),
                    outcome.policy.chosen_tokens.float(),
                    outcome.policy.rejected_tokens.float(),
                    out.discrepancy.float(),
                    out.weight.float(),
                    out.keep.float(),
                    out.beta.float(),
                ]
            )
            .cpu()
            .T.tolist()
        )
        for pair_id, row in zip(outcome.pair_ids, columns, strict=True):
            records.append(
                PairRecord(
                    step=step,
                    micro_batch=index,
                    pair_id=pair_id,
                    policy_chosen_logp=row[0],
                    policy_rejected_logp=row[1],
                    reference_chosen_logp=row[2],
                    reference_rejected_logp=row[3],
                    chosen_tokens=int(row[4]),
                    rejected_tokens=int(row[5]),
                    discrepancy=row[6],
                    filter_weight=row[7],
                    kept=bool(row[8]),
                    beta=row[9],
                    m0=m0,
                    sigma=sigma,
                )
            )
    return records
