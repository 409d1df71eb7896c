"""How likely β-guided filtering was to keep each pair of a micro-batch: the inclusion probabilities
of Gumbel-top-k sampling (k draws without replacement, each ∝ the remaining weights w_i) — what the
outlier inspector shows next to "filtered"/"kept", because filtering is random: a pair with weight
0.27 can be dropped while one with 0.17 is kept, and at step 1 (M0 = σ = 0) every pair is equally
likely.

No closed form exists for k > 1, so the probabilities are estimated from ``DRAWS`` draws with a fixed
seed (deterministic; standard error ≤ 0.5/√DRAWS ≈ 0.008). Pure numpy: the API never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DRAWS = 4000
SEED = 0
_BELOW = 1000.0  # zero weights (underflowed): this far below the smallest log-weight, drawn last


def inclusion_probabilities(
    weights: Sequence[float], k: int, draws: int = DRAWS, seed: int = SEED
) -> list[float]:
    """P(pair i is among the k kept) for keep weights ``weights`` (≥ 0; NaN counts as 0)."""
    n = len(weights)
    if k >= n:
        return [1.0] * n
    if k <= 0:
        return [0.0] * n
    w = np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0)
    positive = w > 0
    log_w = np.log(np.where(positive, w, 1.0))
    floor = (log_w[positive].min() if positive.any() else 0.0) - _BELOW
    log_w = np.where(positive, log_w, floor)
    keys = log_w + np.random.default_rng(seed).gumbel(size=(draws, n))
    kept = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    return (np.bincount(kept.ravel(), minlength=n) / draws).tolist()
