"""Sampling responses from a causal LM: batched, left-padded, seeded, with a KV cache.

Prompts are token ids (a ``TokenizedPair.prompt_ids`` is exactly what training saw); ``encode_prompt``
turns a plain text into ids, through the tokenizer's chat template when it has one. Sampling draws
from softmax(logits / T) with a ``torch.Generator`` seeded per call, so the global RNG (and therefore
the training trajectory) is untouched; T = 0 is greedy (argmax). A response stops at the first EOS
(included in the returned ids, as in the training data) or after ``max_new_tokens`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Sampled:
    """One response: ``ids`` are the generated tokens (ending with EOS when it stopped by itself),
    ``text`` their decoding without special tokens, ``finished`` whether EOS was produced."""

    ids: tuple[int, ...]
    text: str
    finished: bool


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase, prompt: str, use_chat_template: bool = True
) -> list[int]:
    """Token ids of a user prompt: the chat template with the generation prompt when the tokenizer has
    one (and ``use_chat_template``), else the plain text with the tokenizer's own special tokens."""
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt)["input_ids"])


def _left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(B, T) input ids and attention mask, prompts aligned to the right edge."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
    return ids.to(device), mask.to(device)


def _pick(logits: Tensor, temperature: float, generator: torch.Generator) -> Tensor:
    """Next token (B,) from last-position logits (B, V): argmax at T = 0, else a draw at T."""
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def _generate_batch(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    pad_id: int,
    eos_id: int,
    temperature: float,
    max_new_tokens: int,
    generator: torch.Generator,
) -> list[tuple[list[int], bool]]:
    device = next(model.parameters()).device
    ids, mask = _left_pad(prompts, pad_id, device)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    finished = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    tokens: list[Tensor] = []
    position = positions[:, -1:]
    for _ in range(max_new_tokens):
        token = _pick(out.logits[:, -1, :], temperature, generator)
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        tokens.append(token)
        finished = finished | (token == eos_id)
        if bool(finished.all()):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        position = position + 1
        out = model(
            input_ids=token.unsqueeze(1),
            attention_mask=mask,
            position_ids=position,
            past_key_values=out.past_key_values,
            use_cache=True,
        )
    rows = torch.stack(tokens, dim=1).tolist() if tokens else [[] for _ in prompts]
    results = []
    for row in rows:
        stop = row.index(eos_id) + 1 if eos_id in row else len(row)
        results.append((row[:stop], eos_id in row))
    return results


def sample(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    temperature: float,
    max_new_tokens: int,
    seed: int,
    batch_size: int = 32,
) -> list[Sampled]:
    """One response per prompt (prompt token ids), in order. The same (model, prompts, temperature,
    seed, batch_size) gives the same responses. The model is put in eval mode for the call and its
    mode restored after."""
    eos_id = int(tokenizer.eos_token_id)
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        results: list[Sampled] = []
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            for ids, done in _generate_batch(
                model, chunk, pad_id, eos_id, temperature, max_new_tokens, generator
            ):
                text = tokenizer.decode(ids, skip_special_tokens=True)
                results.append(Sampled(tuple(ids), text, done))
        return results
    finally:
        model.train(was_training)
