"""β advice from the first steps' discrepancies (contracts.beta_advice): direction, α and ρ rules."""

from __future__ import annotations

import random

import pytest

from contracts.beta_advice import advise


def sample(centre: float, spread: float, n: int = 256, outliers: float = 0.0, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    values = [rng.gauss(centre, spread) for _ in range(n)]
    for i in range(int(outliers * n)):
        values[i] = centre - 8 * spread  # flipped-looking pairs far below the bulk
    return values


def test_higher_gap_gets_a_larger_beta_low_gap_a_smaller_one() -> None:
    low = advise(sample(0.2, 0.3), (2, 5), batch_size=32)
    high = advise(sample(2.5, 1.0), (2, 5), batch_size=32)
    assert low.beta0 < high.beta0
    assert high.beta0 > 0.1 and low.beta0 == pytest.approx(0.1 * (1 + 0.6 * low.centre))
    assert "larger" in high.reasons[0] and f"M = {high.centre:+.3f}" in high.reasons[0]
    assert low.beta0 >= 0.025 and high.beta0 <= 0.4  # clipped to [β0/4, 4β0]
    assert advise(sample(30.0, 1.0), (2, 5), 32).beta0 == pytest.approx(0.4)
    assert advise(sample(-30.0, 1.0), (2, 5), 32).beta0 == pytest.approx(0.025)


def test_outliers_lower_the_keep_ratio_and_spread_lowers_alpha() -> None:
    clean = advise(sample(1.0, 0.5), (2, 5), 32)
    noisy = advise(sample(1.0, 0.5, outliers=0.15), (2, 5), 32)
    assert clean.keep_ratio == 0.95 and noisy.keep_ratio == pytest.approx(0.7)
    assert noisy.outlier_share == pytest.approx(0.15, abs=0.01)
    wide = advise(sample(1.0, 2.0), (2, 5), 32)
    assert wide.alpha < clean.alpha


def test_too_few_pairs_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 8 pair records"):
        advise([0.1, float("nan")] * 4, (2, 3), 32)
