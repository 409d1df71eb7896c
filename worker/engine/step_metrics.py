"""Turning one optimizer step's micro-batch outputs into metric points and per-pair records.

Per-pair tensors stay on the device during the step. At a log step they are stacked with the step's
scalars into one tensor that reaches the host in a single transfer (``step_table``); the per-pair
diagnostics are computed there, once for the step's N pairs, and the batch means and the pair records
are plain host arithmetic over N floats.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor

from contracts import metric_keys as mk
from contracts.beta_dpo_values import beta_dpo_values
from contracts.events import MetricPoint, PairRecord
from worker.alignment.beta_dpo import Calibration
from worker.alignment.diagnostics import PairDiagnostics, StepSignals, pair_diagnostics
from worker.engine.model.scoring import PairScores
from worker.engine.objective import ObjectiveOutput

# the PairRecord fields taken from the micro-batch (policy_chosen_logp … beta), in PairRecord's order
PAIR_FIELDS = mk.PAIR_COLUMNS[mk.PAIR_COLUMNS.index("policy_chosen_logp") : mk.PAIR_COLUMNS.index("m0")]
DIAGNOSTIC_FIELDS = tuple(f.name for f in fields(PairDiagnostics))


@dataclass
class MicroBatchOutcome:
    """What one global micro-batch contributes to the step (tensors gathered over ranks, (N,))."""

    pair_ids: list[str]
    output: ObjectiveOutput
    policy: PairScores
    reference: PairScores

    def pair_columns(self) -> list[Tensor]:
        """The PAIR_FIELDS of this micro-batch's pairs as (N,) tensors (detached)."""
        out = self.output
        return [
            self.policy.chosen.detach(),
            self.policy.rejected.detach(),
            self.reference.chosen,
            self.reference.rejected,
            self.policy.chosen_tokens,
            self.policy.rejected_tokens,
            out.discrepancy,
            out.weight,
            out.keep,
            out.beta,
        ]


@dataclass
class StepAccumulator:
    """The micro-batches of one optimizer step."""

    outcomes: list[MicroBatchOutcome] = field(default_factory=list)

    def add(self, outcome: MicroBatchOutcome) -> None:
        self.outcomes.append(outcome)


@dataclass(frozen=True)
class StepTable:
    """A log step's values on the host. ``columns``: every PAIR_FIELDS and DIAGNOSTIC_FIELDS name → its
    N values (the step's micro-batches in order); loss, grad_norm and sft (the mean SFT term) are the
    step's scalars; loss_all_pairs is the mean over micro-batches of the unmasked loss (all pairs)."""

    columns: dict[str, list[float]]
    loss: float
    grad_norm: float
    sft: float
    loss_all_pairs: float


def step_table(acc: StepAccumulator, loss: Tensor, grad_norm: Tensor, beta0: float) -> StepTable:
    """The step's per-pair values and scalars in one host transfer (float32 values, or wider when the
    model's are), then the per-pair diagnostics (rewards at ``beta0``) on the host."""
    outputs = [o.output for o in acc.outcomes]
    scalars = torch.stack(
        [loss.detach(), grad_norm.detach(), *(o.sft for o in outputs), *(o.unmasked for o in outputs)]
    )
    flat = torch.cat([*(c for o in acc.outcomes for c in o.pair_columns()), scalars]).tolist()
    columns: dict[str, list[float]] = {name: [] for name in PAIR_FIELDS}
    start = 0
    for outcome in acc.outcomes:  # each micro-batch's columns, one after the other
        n = len(outcome.pair_ids)
        for name in PAIR_FIELDS:
            columns[name] += flat[start : start + n]
            start += n
    loss_value, grad_norm_value, *rest = flat[start:]
    sfts, unmasked = rest[: len(outputs)], rest[len(outputs) :]
    diagnostics = pair_diagnostics(*(columns[name] for name in PAIR_FIELDS[:6]), beta0)
    columns.update({name: getattr(diagnostics, name) for name in DIAGNOSTIC_FIELDS})
    return StepTable(columns, loss_value, grad_norm_value, _mean(sfts), _mean(unmasked))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags)


def step_values(table: StepTable, calibrations: Sequence[Calibration | None]) -> dict[str, float]:
    """The per-step batch means of SCIENCE.md §A.4 and §C.5, and the β-DPO summaries of the step's
    micro-batches (``calibrations``, one per micro-batch, None without β-DPO)."""
    c = table.columns
    tokens = c["chosen_tokens"] + c["rejected_tokens"]
    values = {
        mk.TRAIN_LOSS: table.loss,
        mk.TRAIN_SFT_LOSS: table.sft,
        mk.TRAIN_GRAD_NORM: table.grad_norm,
        mk.TRAIN_BETA: _mean(c["beta"]),
        mk.REWARDS_CHOSEN: _mean(c["chosen_reward"]),
        mk.REWARDS_REJECTED: _mean(c["rejected_reward"]),
        mk.REWARDS_MARGIN: _mean(c["margin"]),
        mk.REWARDS_ACCURACY: _share([m > 0 for m in c["margin"]]),
        mk.LOGPS_CHOSEN: _mean(c["policy_chosen_logp"]),
        mk.LOGPS_REJECTED: _mean(c["policy_rejected_logp"]),
        mk.LOGRATIO_CHOSEN_PER_TOKEN: _mean(c["chosen_logratio_per_token"]),
        mk.LOGRATIO_REJECTED_PER_TOKEN: _mean(c["rejected_logratio_per_token"]),
        mk.CHOSEN_BELOW_REFERENCE: _share([r < 0 for r in c["chosen_logratio"]]),
        mk.GRAD_LOG_RATIO: _mean(c["grad_log_ratio"]),
        mk.GRAD_WEIGHT: _mean(c["dpo_weight"]),
        mk.PAIR_MASS: _mean(c["pair_mass"]),
        mk.BDPO_KEPT_FRACTION: _mean(c["kept"]),
    }
    values[mk.PAIR_MASS_PER_TOKEN] = values[mk.PAIR_MASS] / max(_mean(tokens), 1.0)
    beta_dpo = beta_dpo_values(calibrations)
    if beta_dpo:
        values[mk.TRAIN_LOSS_ALL_PAIRS] = table.loss_all_pairs
        values.update(beta_dpo)
    return values


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


def pair_records(step: int, acc: StepAccumulator, table: StepTable) -> list[PairRecord]:
    """Per-pair rows of every micro-batch of the step (values used in that micro-batch's loss)."""
    rows = list(zip(*(table.columns[name] for name in PAIR_FIELDS), strict=True))
    records: list[PairRecord] = []
    start = 0
    for index, outcome in enumerate(acc.outcomes):
        calibration = outcome.output.calibration
        m0 = calibration.m0 if calibration is not None else math.nan
        sigma = calibration.sigma if calibration is not None else math.nan
        for pair_id, row in zip(outcome.pair_ids, rows[start : start + len(outcome.pair_ids)], strict=True):
            pc, pr, rc, rr, ct, rt, discrepancy, weight, kept, beta = row
            records.append(
                PairRecord(
                    step, index, pair_id, pc, pr, rc, rr, int(ct), int(rt), discrepancy, weight, bool(kept),
                    beta, m0, sigma,
                )
            )  # fmt: skip
        start += len(outcome.pair_ids)
    return records
