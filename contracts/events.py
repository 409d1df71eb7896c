"""What the engine emits: metric points, per-pair records, evaluations, and the sink protocol.

Plain dataclasses (stdlib) so that emitting 10⁵ points costs no validation; the storage layer and the
API validate at their own edges. MetricPoint and PairRecord, created by the dozen at every log step,
are not frozen (a frozen dataclass's constructor costs about 9× as much): treat them as values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(slots=True)
class MetricPoint:
    """One scalar of a run. key: a name from contracts.metric_keys; step: optimizer step (0-based
    count of completed updates at log time); value: float, NaN/inf kept; wall_time: unix seconds."""

    key: str
    step: int
    value: float
    wall_time: float


@dataclass(slots=True)
class PairRecord:
    """One preference pair in one micro-batch, with the values used in that micro-batch's loss.

    Log-probs are summed over response tokens, in nats. discrepancy is M_i in the run's units
    (u-units unless discrepancy_units is 'paper'); filter_weight is exp(−(M_i − M0)²/(2σ²)) with the
    σ floor applied (1.0 when filtering is off); beta is the β that multiplied this pair's logit.
    """

    step: int
    micro_batch: int
    pair_id: str
    policy_chosen_logp: float
    policy_rejected_logp: float
    reference_chosen_logp: float
    reference_rejected_logp: float
    chosen_tokens: int
    rejected_tokens: int
    discrepancy: float
    filter_weight: float
    kept: bool
    beta: float
    m0: float
    sigma: float


@dataclass(frozen=True, slots=True)
class PairText:
    """The texts of a pair, written once per run (pair_id is a content hash, stable across runs)."""

    pair_id: str
    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True, slots=True)
class EvalRecord:
    """A win rate at one step: wins/ties/losses of the policy against ``opponent`` under ``judge``.
    win_rate counts a tie as half a win; ci_low/ci_high are a 95 % Wilson interval."""

    step: int
    temperature: float
    judge: str
    opponent: str
    wins: int
    ties: int
    losses: int
    win_rate: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True, slots=True)
class Judgment:
    """One judged prompt: the policy's ``response`` against ``opponent_response`` under ``judge``.
    item: the prompt's index in the evaluation set; verdict is from the policy's side."""

    step: int
    temperature: float
    judge: str
    opponent: str
    item: int
    prompt: str
    response: str
    opponent_response: str
    verdict: Literal["win", "tie", "loss"]
    judge_output: str


class MetricsSink(Protocol):
    """The engine's only output. Implementations must be idempotent per (key, step) and per
    (step, micro_batch, pair_id) so that a retried batch adds nothing."""

    def points(self, points: Sequence[MetricPoint]) -> None: ...

    def pairs(self, records: Sequence[PairRecord]) -> None: ...

    def texts(self, texts: Sequence[PairText]) -> None: ...

    def evaluations(self, records: Sequence[EvalRecord], judgments: Sequence[Judgment]) -> None: ...

    def status(self, message: str, progress: float | None = None) -> None: ...

    def flush(self) -> None:
        """Store everything emitted so far (called before a checkpoint, so that a run resumed from
        it has every metric up to its step); may raise when the store is unavailable."""
        ...

    def checkpointed(self, path: str, step: int) -> None:
        """A complete checkpoint of ``step`` is in folder ``path`` now: record it where a re-queued
        attempt looks for it (at once, not at the next heartbeat); may raise when the store is down."""
        ...
