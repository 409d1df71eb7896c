"""How well a per-pair score ranks planted (flipped) pairs: ROC AUC with its interval, precision at k.

Pure arithmetic on host floats (the audit runs once per run, over a few thousand pairs).

- ROC AUC is the Mann–Whitney probability that a planted pair scores above a clean one (ties count
  half). Its 95 % interval uses the Hanley–McNeil (1982) standard error, clipped to [0, 1].
- precision@k: of the k highest-scoring pairs (k = the number planted, ties broken by pair order),
  the share that are planted; the base rate is what a random ranking gets (k / n). The caller puts a
  Wilson interval on hits / k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class RankingAudit:
    """auc, auc_low, auc_high: ROC AUC and its 95 % interval (NaN without both classes); hits: planted
    pairs among the top k; k: the number planted; n: pairs ranked; base_rate: k / n."""

    auc: float
    auc_low: float
    auc_high: float
    hits: int
    k: int
    n: int

    @property
    def base_rate(self) -> float:
        return self.k / self.n if self.n else math.nan

    @property
    def precision(self) -> float:
        return self.hits / self.k if self.k else math.nan


def roc_auc(scores: Sequence[float], planted: Sequence[bool]) -> float:
    """P(score of a planted pair > score of a clean one) + ½ P(equal), by ranks (average ranks for ties)."""
    positives = sum(planted)
    negatives = len(planted) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = sorted(range(len(scores)), key=scores.__getitem__)
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        for index in order[start : end + 1]:
            ranks[index] = (start + end) / 2 + 1  # 1-based average rank of the tie group
        start = end + 1
    rank_sum = sum(rank for rank, flag in zip(ranks, planted, strict=True) if flag)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def hanley_mcneil_interval(auc: float, positives: int, negatives: int) -> tuple[float, float]:
    """The 95 % normal interval of an AUC from Hanley & McNeil's standard error, clipped to [0, 1]."""
    if math.isnan(auc) or positives == 0 or negatives == 0:
        return math.nan, math.nan
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    half = Z95 * math.sqrt(max(variance, 0.0))
    return max(auc - half, 0.0), min(auc + half, 1.0)


def audit_ranking(scores: Sequence[float], planted: Sequence[bool]) -> RankingAudit:
    """ROC AUC (with interval) and hits among the top k = number planted, of ``scores`` (higher = more
    suspicious) against the planted flags. NaN scores rank lowest."""
    if len(scores) != len(planted):
        raise ValueError(f"{len(scores)} scores but {len(planted)} planted flags")
    clean_scores = [s if not math.isnan(s) else -math.inf for s in scores]
    k = sum(planted)
    auc = roc_auc(clean_scores, planted)
    low, high = hanley_mcneil_interval(auc, k, len(planted) - k)
    top = sorted(range(len(clean_scores)), key=lambda i: (-clean_scores[i], i))[:k]
    hits = sum(1 for i in top if planted[i])
    return RankingAudit(auc, low, high, hits, k, len(planted))
