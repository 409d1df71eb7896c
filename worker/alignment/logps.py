"""Sequence log-probabilities of responses from causal-LM logits (SCIENCE.md §A.1).

s_θ(y|x) = Σ_t log πθ(y_t | x, y_<t), summed over the response tokens only: prompt and padding
positions carry the label ``ignore_index`` and contribute nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor


def token_logps(logits: Tensor, labels: Tensor, ignore_index: int = -100) -> tuple[Tensor, Tensor]:
    """Per-token log-probabilities of the labels, after the causal shift.

    logits: (B, T, V), any floating dtype; position t predicts the token at t + 1.
    labels: (B, T) token ids; prompt and padding positions hold ``ignore_index``.
    Returns (logps, mask): logps (B, T−1) float32 nats, 0 where masked; mask (B, T−1) bool.

    Computed as gather(logit) − logsumexp(logits) in float32, one sequence at a time, so the only
    (T, V) float32 buffer alive at once is one row's (no (B, T, V) log-softmax is materialised).
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        shapes = f"{tuple(logits.shape)}, {tuple(labels.shape)}"
        raise ValueError(f"expected logits (B,T,V) and labels (B,T); got {shapes}")
    shifted_logits = logits[:, :-1, :]
    targets = labels[:, 1:]
    mask = targets != ignore_index
    safe_targets = targets.masked_fill(~mask, 0).unsqueeze(-1)
    rows = []
    for row_logits, row_targets in zip(shifted_logits, safe_targets, strict=True):
        picked = row_logits.gather(-1, row_targets).squeeze(-1).float()
        rows.append(picked - torch.logsumexp(row_logits.float(), dim=-1))
    logps = torch.stack(rows) if rows else shifted_logits.new_zeros(targets.shape, dtype=torch.float32)
    return logps.masked_fill(~mask, 0.0), mask


def sequence_logps(logits: Tensor, labels: Tensor, ignore_index: int = -100) -> tuple[Tensor, Tensor]:
    """Summed response log-probability s(y|x) and response length per sequence.

    logits: (B, T, V); labels: (B, T) with prompt/pad positions = ``ignore_index``.
    The shift is labels[:, 1:] against logits[:, :-1].
    Returns (logps, tokens): logps (B,) float32 nats (0 for a sequence with no response token),
    tokens (B,) long, the number of response tokens counted.
    """
    logps, mask = token_logps(logits, labels, ignore_index)
    return logps.sum(dim=-1), mask.sum(dim=-1)
