"""Supervised warm-up: the SFT step that precedes DPO in the papers (the reference πref is an SFT
model). Trains the policy of ``RunConfig.model`` on the chosen responses of ``RunConfig.data``'s
training pairs (token-mean negative log-likelihood of response tokens, AdamW, gradient norm clipped
at 1) and saves it as a local ``save_pretrained`` directory (safetensors + tokenizer) that
``model.source: pretrained`` loads.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from contracts.config import RunConfig
from worker.engine.data.pairs import load_pairs
from worker.engine.evaluation.probes import probe_batch
from worker.engine.model.loading import load_policy
from worker.engine.model.scoring import response_logps


def sft_warmup(config: RunConfig, out_dir: Path, steps: int, lr: float, batch_size: int = 32) -> Path:
    """Trains ``steps`` AdamW steps on ``batch_size`` chosen responses (drawn without replacement
    within an epoch) at learning rate ``lr`` and saves the model to ``out_dir`` (returned).
    Deterministic for ``config.seed``."""
    torch.manual_seed(config.seed)
    model, tokenizer = load_policy(config.model, config.seed)
    device = torch.device("cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu")
    model = model.to(device).train()
    sequences = [("chosen", p.prompt_ids, p.chosen_ids) for p in load_pairs(config.data, tokenizer).train]
    order: list[int] = []
    rng = random.Random(f"alignscope-sft:{config.seed}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        if len(order) < min(batch_size, len(sequences)):
            order = list(range(len(sequences)))
            rng.shuffle(order)
        chunk = [sequences[order.pop()] for _ in range(min(batch_size, len(sequences)))]
        logps, counts = response_logps(model, probe_batch(chunk, int(tokenizer.pad_token_id)).to(device))
        loss = -logps.sum() / counts.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir
