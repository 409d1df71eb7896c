"""β advice for a stored run, and its response model: its first steps' discrepancies from the pair
records, its own β0, α and batch size, through contracts.beta_advice (the same function the experiment
runner uses)."""

from __future__ import annotations

import json
from dataclasses import asdict

from sqlalchemy.engine import Connection

from backend.api.errors import Conflict
from backend.api.models import Out
from backend.storage.pairs import early_discrepancies
from backend.storage.runs import RunRow
from contracts.beta_advice import MIN_PAIRS, BetaAdvice, advise


def advice_for(conn: Connection, run: RunRow, first_steps: int) -> BetaAdvice:
    """The advice from steps 2…first_steps; Conflict (409) naming the fix when there is too little."""
    config = json.loads(run.config)
    values = early_discrepancies(conn, run.id, 2, first_steps)
    if len(values) < MIN_PAIRS:
        raise Conflict(
            f"β advice needs at least {MIN_PAIRS} pair records in steps 2–{first_steps}; this run has "
            f"{len(values)} — run with diagnostics.pair_records: true and log_every: 1, and let it pass "
            f"step {first_steps}"
        )
    loss = config.get("loss") or {}
    beta_dpo = config.get("beta_dpo") or {}
    return advise(
        values,
        (2, first_steps),
        batch_size=int((config.get("optim") or {}).get("batch_size", 8)),
        beta_default=float(loss.get("beta", 0.1)),
        alpha_default=float(beta_dpo.get("alpha", 0.6)),
    )


class BetaAdviceOut(Out):
    """Suggested β0, α (u-units) and keep ratio ρ from the first steps' discrepancy distribution, the
    statistics behind them (median M, robust spread, outlier share, pairs and steps used) and the
    reasoning in plain sentences (contracts.beta_advice)."""

    beta0: float
    alpha: float
    keep_ratio: float
    centre: float
    spread: float
    outlier_share: float
    pairs: int
    steps: list[int]
    reasons: list[str]

    @classmethod
    def of(cls, advice: BetaAdvice) -> BetaAdviceOut:
        values = asdict(advice)
        return cls(**{**values, "steps": list(advice.steps), "reasons": list(advice.reasons)})
