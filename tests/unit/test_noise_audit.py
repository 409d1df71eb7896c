"""ROC AUC, its Hanley–McNeil interval and precision@k of a per-pair score against planted flags."""

from __future__ import annotations

import math
import random

import pytest

from worker.alignment.noise_audit import audit_ranking, hanley_mcneil_interval, roc_auc


def brute_force_auc(scores: list[float], planted: list[bool]) -> float:
    pos = [s for s, p in zip(scores, planted, strict=True) if p]
    neg = [s for s, p in zip(scores, planted, strict=True) if not p]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def test_auc_equals_the_pairwise_definition_with_ties() -> None:
    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(5, 40)
        scores = [float(rng.randint(0, 6)) for _ in range(n)]  # many ties
        planted = [rng.random() < 0.3 for _ in range(n)]
        planted[0], planted[1] = True, False
        assert roc_auc(scores, planted) == pytest.approx(brute_force_auc(scores, planted))


def test_perfect_random_and_reversed_rankings() -> None:
    planted = [True] * 10 + [False] * 40
    perfect = audit_ranking([1.0] * 10 + [0.0] * 40, planted)
    assert perfect.auc == 1.0 and perfect.hits == 10 and perfect.precision == 1.0 and perfect.base_rate == 0.2
    assert perfect.auc_low > 0.9
    reversed_ = audit_ranking([0.0] * 10 + [1.0] * 40, planted)
    assert reversed_.auc == 0.0 and reversed_.hits == 0 and reversed_.auc_high < 0.1
    rng = random.Random(1)
    flags = [rng.random() < 0.2 for _ in range(2000)]
    noise = audit_ranking([rng.random() for _ in flags], flags)
    assert noise.auc_low < 0.5 < noise.auc_high  # a random score is not distinguishable from chance
    assert abs(noise.precision - noise.base_rate) < 0.06


def test_interval_narrows_with_more_pairs_and_nan_scores_rank_last() -> None:
    small = hanley_mcneil_interval(0.7, 10, 40)
    large = hanley_mcneil_interval(0.7, 100, 400)
    assert small[1] - small[0] > 2 * (large[1] - large[0])
    assert all(math.isnan(x) for x in hanley_mcneil_interval(0.7, 0, 40))
    audit = audit_ranking([math.nan, 0.5, 0.1], [True, False, False])
    assert audit.auc == 0.0 and audit.hits == 0
    assert math.isnan(audit_ranking([0.1, 0.2], [False, False]).auc)
