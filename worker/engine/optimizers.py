"""Optimizer and learning-rate schedule of a run (AdamW or RMSprop, linear warm-up then constant,
as in the DPO and β-DPO reference codes)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from contracts.config import OptimConfig


def make_optimizer(config: OptimConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW or RMSprop over the trainable ``params`` at ``config.lr`` (per optimizer step)."""
    trainable = [p for p in params if p.requires_grad]
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(trainable, lr=config.lr, weight_decay=config.weight_decay)
    # fused: one kernel over all tensors (CPU and CUDA); 5-12x faster than the per-tensor default on CPU
    return torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay, fused=True)


def warmup_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int) -> LambdaLR:
    """lr × min(1, (step + 1) / (warmup_steps + 1)): linear warm-up, then constant."""
    return LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / (warmup_steps + 1)))
