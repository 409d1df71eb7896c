"""A TRL step's per-pair values → AlignScope's metric values, with the 3D diagnostics of
worker.alignment (its pair records: alignscope.trl.rows). The same quantities and keys as a native
run's (the engine's step_metrics), so the dashboard draws an external run like a native one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contracts import metric_keys as mk
from contracts.beta_dpo_values import beta_dpo_values
from worker.alignment.beta_dpo import Calibration
from worker.alignment.diagnostics import PairDiagnostics, StepSignals, pair_diagnostics

# the per-pair columns a micro-batch carries, in PairRecord order (policy_chosen_logp … beta)
COLUMNS = mk.PAIR_COLUMNS[mk.PAIR_COLUMNS.index("policy_chosen_logp") : mk.PAIR_COLUMNS.index("m0")]


@dataclass
class MicroBatch:
    """One global micro-batch of a step (all ranks, rank order): each pair's raw (prompt, chosen,
    rejected) as the dataset gave them (less TRL's EOS), COLUMNS → N host values, and the calibration
    its β-DPO values come from (the step's one with scope batch)."""

    pairs: list[tuple[Any, Any, Any]]
    columns: dict[str, list[float]]
    calibration: Calibration | None


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def step_values(batches: Sequence[MicroBatch], beta0: float) -> dict[str, float]:
    """The batch means of SCIENCE.md §A.4 and §C.5 over the step's pairs, rewards at ``beta0``."""
    c = {name: [v for b in batches for v in b.columns[name]] for name in COLUMNS}
    d: PairDiagnostics = pair_diagnostics(*(c[name] for name in COLUMNS[:6]), beta0)
    tokens = c["chosen_tokens"] + c["rejected_tokens"]
    values = {
        mk.TRAIN_BETA: _mean(c["beta"]),
        mk.REWARDS_CHOSEN: _mean(d.chosen_reward),
        mk.REWARDS_REJECTED: _mean(d.rejected_reward),
        mk.REWARDS_MARGIN: _mean(d.margin),
        mk.REWARDS_ACCURACY: _mean([float(m > 0) for m in d.margin]),
        mk.LOGPS_CHOSEN: _mean(c["policy_chosen_logp"]),
        mk.LOGPS_REJECTED: _mean(c["policy_rejected_logp"]),
        mk.LOGRATIO_CHOSEN_PER_TOKEN: _mean(d.chosen_logratio_per_token),
        mk.LOGRATIO_REJECTED_PER_TOKEN: _mean(d.rejected_logratio_per_token),
        mk.CHOSEN_BELOW_REFERENCE: _mean([float(r < 0) for r in d.chosen_logratio]),
        mk.GRAD_LOG_RATIO: _mean(d.grad_log_ratio),
        mk.GRAD_WEIGHT: _mean(d.dpo_weight),
        mk.PAIR_MASS: _mean(d.pair_mass),
        mk.BDPO_KEPT_FRACTION: _mean(c["kept"]),
    }
    values[mk.PAIR_MASS_PER_TOKEN] = values[mk.PAIR_MASS] / max(_mean(tokens), 1.0)
    values.update(beta_dpo_values([b.calibration for b in batches]))  # scope batch: one per step
    return values


def signal_values(signals: StepSignals) -> dict[str, float]:
    """The 3D monitor's signals and fired alerts under their metric keys."""
    values = {
        mk.SLOPE_CHOSEN: signals.slope_chosen,
        mk.SLOPE_REJECTED: signals.slope_rejected,
        mk.D1_RATE: signals.drastic_drop_rate,
        mk.REJECTED_SHARE: signals.rejected_share,
        mk.CHOSEN_DRAWDOWN: signals.chosen_drawdown,
    }
    alerts = {"drastic_drop": mk.ALERT_D1, "degradation": mk.ALERT_D2, "dispersion": mk.ALERT_D3}
    values.update({alerts[alert.name]: 1.0 for alert in signals.alerts})
    return values


# TRL's logged names → AlignScope's keys (every TRL value is also kept as "trl/<name>")
TRL_KEYS = {"loss": mk.TRAIN_LOSS, "learning_rate": mk.TRAIN_LR, "grad_norm": mk.TRAIN_GRAD_NORM}


def trl_values(logs: dict[str, float]) -> dict[str, float]:
    """TRL's own logged numbers: as ``trl/<name>``, and loss, lr and grad norm under our keys."""
    numeric = {k: float(v) for k, v in logs.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    values = {f"trl/{name}": value for name, value in numeric.items()}
    values.update({TRL_KEYS[name]: value for name, value in numeric.items() if name in TRL_KEYS})
    return values
