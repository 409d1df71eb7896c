"""β advice: a starting β0, α and ρ for β-DPO from the discrepancy distribution of a run's first steps.

Pure Python (no torch), evaluated where the pair records are: the API (a run's page) and the
experiment runner. The rule follows the β-DPO paper's own evidence (SCIENCE.md §B.4, docs/SCIENCE.md
"β advice"): β should be larger where the reward gap is larger — the paper's batch rule
β = β0(1 + α(M̄ − M0)) raises β for high-gap batches, and its Fig. 1 shows low-gap data losing win
rate when β grows (0.1 → 0.5: 42 % → 33 %). Concretely, from the discrepancies M_i (u-units) of the
pairs of steps 2…K (step 1's policy equals the reference, so its M_i are 0):

- centre c = median M, robust spread s = IQR / 1.349, outlier share p = share with |M − c| > 3s;
- β0 = clip(β_default · (1 + α_default · c), β_default / 4, 4 β_default): the paper's batch rule applied
  once with M0 = 0 (no gap), so data the first steps already separate well (high gap) get a larger β;
- α = clip(0.2 · √(ρ·N) / s, 0.05, 2): β then moves about ±20 % between batches whose kept mean is one
  standard error (s / √(ρN)) from M0;
- ρ = clip(1 − 2p, 0.6, 0.95) in steps of 0.05: drop about twice the outlier share (at least 5 %).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

ROBUST_SIGMA = 1.349  # IQR of a normal distribution in units of its σ
OUTLIER_Z = 3.0
BETA_SWING = 0.2
MIN_PAIRS = 8


@dataclass(frozen=True)
class BetaAdvice:
    """The suggested β0, α and ρ, the statistics they come from, and the reasoning in plain words."""

    beta0: float
    alpha: float
    keep_ratio: float
    centre: float
    spread: float
    outlier_share: float
    pairs: int
    steps: tuple[int, int]
    reasons: tuple[str, ...]


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def advise(
    discrepancies: Sequence[float],
    steps: tuple[int, int],
    batch_size: int,
    beta_default: float = 0.1,
    alpha_default: float = 0.6,
) -> BetaAdvice:
    """The advice from the M_i (u-units) of the pairs of ``steps`` (first, last); ValueError with fewer
    than MIN_PAIRS finite values."""
    values = [m for m in discrepancies if math.isfinite(m)]
    if len(values) < MIN_PAIRS:
        raise ValueError(f"β advice needs at least {MIN_PAIRS} pair records after step 1, got {len(values)}")
    centre = statistics.median(values)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    spread = max((q3 - q1) / ROBUST_SIGMA, 1e-6)
    outliers = sum(1 for m in values if abs(m - centre) > OUTLIER_Z * spread) / len(values)
    beta0 = _clip(beta_default * (1 + alpha_default * centre), beta_default / 4, 4 * beta_default)
    keep_ratio = round(_clip(1 - 2 * outliers, 0.6, 0.95) * 20) / 20
    alpha = _clip(BETA_SWING * math.sqrt(keep_ratio * batch_size) / spread, 0.05, 2.0)
    direction = "larger" if beta0 > beta_default else "smaller" if beta0 < beta_default else "the same"
    reasons = (
        f"The first steps ({steps[0]}–{steps[1]}, {len(values)} pairs) separate chosen from rejected by a "
        f"median M = {centre:+.3f} (u-units; 0 = no gap): β0 = {beta_default:g}·(1 + {alpha_default:g}·M) = "
        f"{beta0:.3g}, {direction} than {beta_default:g} — β-DPO gives high-gap data a larger β and "
        "low-gap data a smaller one (its batch rule with M0 = 0; paper Fig. 1).",
        f"The spread of M is s = {spread:.3f} (IQR/1.349): α = 0.2·√(ρ·{batch_size})/s = {alpha:.3g} moves β "
        "about ±20 % for a batch one standard error away from M0.",
        f"{100 * outliers:.1f} % of pairs lie beyond 3s of the median: keep ρ = {keep_ratio:.2f} "
        f"(drop about twice the outlier share, at least 5 %, at most 40 %).",
    )
    return BetaAdvice(beta0, alpha, keep_ratio, centre, spread, outliers, len(values), steps, reasons)
