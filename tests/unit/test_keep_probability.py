"""Keep probabilities of Gumbel-top-k filtering (issue 19 item 8) against exact values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from backend.keep_probability import inclusion_probabilities

TOLERANCE = 0.03  # ≈ 4 standard errors of 4000 draws


def exact(weights: list[float], k: int) -> list[float]:
    """Sum over every ordered sequence of k distinct draws of Π w_i / (remaining weight)."""
    n, total = len(weights), sum(weights)
    probability = [0.0] * n
    for order in itertools.permutations(range(n), k):
        p, left = 1.0, total
        for i in order:
            p *= weights[i] / left
            left -= weights[i]
        for i in order:
            probability[i] += p
    return probability


def test_one_draw_of_two_is_proportional_to_the_weights() -> None:
    # k = 1: P(i) = w_i / Σw = 0.267 / (0.267 + 0.167) = 0.615
    assert inclusion_probabilities([0.267, 0.167], 1) == pytest.approx([0.615, 0.385], abs=TOLERANCE)


def test_equal_weights_give_k_over_n_and_the_probabilities_sum_to_k() -> None:
    got = inclusion_probabilities([1.0] * 8, 6)  # step 1: M0 = σ = 0, every weight is 1
    assert got == pytest.approx([0.75] * 8, abs=TOLERANCE)
    assert sum(got) == pytest.approx(6)


def test_matches_exact_enumeration_for_a_micro_batch_of_six() -> None:
    weights = [0.9, 0.267, 0.167, 0.05, 1.0, 0.6]
    assert inclusion_probabilities(weights, 4) == pytest.approx(exact(weights, 4), abs=TOLERANCE)


def test_zero_weights_are_kept_only_when_needed_and_edges() -> None:
    assert inclusion_probabilities([1.0, 0.5, 0.0, float("nan")], 2)[2:] == [0.0, 0.0]
    assert inclusion_probabilities([0.0, 0.0, 0.0], 2) == pytest.approx([2 / 3] * 3, abs=TOLERANCE)
    assert inclusion_probabilities([0.3, 0.2], 2) == [1.0, 1.0]
    assert inclusion_probabilities([0.3, 0.2], 0) == [0.0, 0.0]
    same = inclusion_probabilities(list(np.linspace(0.1, 1, 10)), 8)
    assert same == inclusion_probabilities(list(np.linspace(0.1, 1, 10)), 8)  # fixed seed: deterministic
