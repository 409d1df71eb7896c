"""Forward passes: summed response log-probs of chosen and rejected for a micro-batch.

One concatenated forward of the 2B rows (chosen rows first). The language-model head is applied only
at response positions (prompt and padding positions never get logits), which is what keeps the
(tokens × vocabulary) tensor small; the result equals ``worker.alignment.logps.sequence_logps`` on the
full logits.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from worker.engine import distributed
from worker.engine.data.pairs import PairBatch, TokenizedPair, collate
from worker.engine.distributed import World
from worker.engine.model import neox_forward
from worker.engine.model.head_logps import token_logps as head_token_logps
from worker.engine.model.shared_prompt import SharedPromptBatch, attention_mask, collate_shared

Batch = PairBatch | SharedPromptBatch


@dataclass(frozen=True)
class PairScores:
    """Summed response log-probs (B,) in nats and response token counts (B,) for one micro-batch."""

    chosen: Tensor
    rejected: Tensor
    chosen_tokens: Tensor
    rejected_tokens: Tensor


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast on CUDA; nothing on CPU (float32 throughout)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def response_logps(model: nn.Module, batch: PairBatch) -> tuple[Tensor, Tensor]:
    """Summed log-probs (2B,) in float32 nats and response token counts (2B,) of a batch.

    Runs the base transformer on all tokens, then the output embedding on the M response positions
    only: logits are (M, V) instead of (2B, T, V), and for large vocabularies only a chunk of them at
    a time (``head_logps``).
    """
    labels = batch.labels[:, 1:]
    mask = labels != -100
    rows = torch.arange(labels.shape[0], device=labels.device).unsqueeze(1).expand_as(labels)[mask]
    targets = labels[mask]
    with _autocast(batch.input_ids.device):
        base = getattr(model, model.base_model_prefix)
        hidden = base(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        token_logps = head_token_logps(hidden[:, :-1][mask], model.get_output_embeddings(), targets)
    sums = torch.zeros(labels.shape[0], dtype=torch.float32, device=labels.device)
    sums = sums.index_add(0, rows, token_logps)
    return sums, mask.sum(dim=1)


def shared_response_logps(model: nn.Module, batch: SharedPromptBatch) -> tuple[Tensor, Tensor]:
    """Summed log-probs (2B,) in float32 nats and response token counts (2B,) of a prompt-sharing
    batch, in the 2B-row order of ``response_logps`` (chosen first); same values up to rounding.
    GPT-NeoX models run through the lean forward of ``neox_forward`` when it applies."""
    with _autocast(batch.input_ids.device):
        if neox_forward.applies(model):
            hidden = neox_forward.hidden_states(model, batch.input_ids, batch.allowed, batch.position_ids)
        else:
            base = getattr(model, model.base_model_prefix)
            hidden = base(
                input_ids=batch.input_ids,
                attention_mask=attention_mask(model, batch.allowed),
                position_ids=batch.position_ids,
            ).last_hidden_state
        flat = hidden.reshape(-1, hidden.shape[-1])[batch.sources]
        token_logps = head_token_logps(flat, model.get_output_embeddings(), batch.targets)
    sums = torch.zeros(2 * batch.size, dtype=torch.float32, device=token_logps.device)
    return sums.index_add(0, batch.slots, token_logps), batch.token_counts()


def split_scores(sums: Tensor, counts: Tensor) -> PairScores:
    """Chosen rows first, rejected rows second → PairScores of B pairs."""
    size = sums.shape[0] // 2
    return PairScores(sums[:size], sums[size:], counts[:size], counts[size:])


def score_pairs(model: nn.Module, batch: Batch) -> PairScores:
    """Policy scores of one micro-batch (with gradients)."""
    if isinstance(batch, SharedPromptBatch):
        return split_scores(*shared_response_logps(model, batch))
    return split_scores(*response_logps(model, batch))


class ReferenceScores:
    """πref log-probs: on the fly from a gradient-free forward (``copy``: a frozen model, or the LoRA
    policy with its adapters off), or precomputed once for every pair and looked up by pair_id
    (``precomputed``; no reference model kept in memory)."""

    def __init__(
        self, forward: Callable[[Batch], PairScores] | None, table: dict[str, tuple[float, float]] | None
    ) -> None:
        self._forward = forward
        self._table = table

    def __call__(self, batch: Batch, device: torch.device) -> PairScores:
        if self._forward is not None:
            return self._forward(batch)
        assert self._table is not None
        values = torch.tensor(
            [self._table[pid] for pid in batch.pair_ids], dtype=torch.float32, device=device
        )
        counts = batch.token_counts()
        size = batch.size
        return PairScores(values[:, 0], values[:, 1], counts[:size], counts[size:])


def _chunks(items: Sequence[TokenizedPair], size: int) -> Iterator[Sequence[TokenizedPair]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def precompute_reference(
    forward: Callable[[Batch], PairScores],
    pairs: Sequence[TokenizedPair],
    pad_id: int,
    device: torch.device,
    cache: Path,
    key: str,
    batch_size: int = 16,
    share_prompt: bool = False,
    world: World | None = None,
) -> dict[str, tuple[float, float]]:
    """Reference log-probs of every pair, computed once and cached on disk under ``key``.

    forward: πref's gradient-free scores of a batch (eval mode is the caller's). key should fingerprint
    (model weights, dataset pair ids, max lengths). The cache file holds plain tensors and is read
    back with ``weights_only=True``. share_prompt: score through prompt-sharing batches
    (``shared_prompt.py``; the model must support them). Several processes split the batches (every
    rank runs the same number of forwards, as FSDP needs) and gather the table; rank 0 writes it.
    """
    world = world or World(0, 1, device)
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    path = cache / f"reference-{digest}.pt"
    ids = [pair.pair_id for pair in pairs]
    cached = _cached(path, ids)
    if not distributed.any_rank(cached is None, world):
        assert cached is not None
        return cached
    chunks = list(_chunks(pairs, batch_size))
    mine: list[tuple[int, Tensor]] = []
    for index in range(world.rank, -(-len(chunks) // world.size) * world.size, world.size):
        chunk = chunks[index % len(chunks)]  # past the end: a repeat, so every rank runs a forward
        batch = collate_shared(chunk, pad_id) if share_prompt else collate(chunk, pad_id)
        scores = forward(batch.to(device))
        if index < len(chunks):
            mine.append((index, torch.stack([scores.chosen, scores.rejected], dim=1).double().cpu()))
    stacked = torch.cat([values for _, values in sorted(distributed.gather_objects(mine, world))])
    if world.is_main:
        cache.mkdir(parents=True, exist_ok=True)
        torch.save({"ids": ids, "values": stacked}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)  # another process never reads half a file
    return {pid: (float(row[0]), float(row[1])) for pid, row in zip(ids, stacked, strict=True)}


def _cached(path: Path, ids: list[str]) -> dict[str, tuple[float, float]] | None:
    if not path.is_file():
        return None
    stored = torch.load(path, weights_only=True)
    table = dict(zip(stored["ids"], stored["values"].tolist(), strict=True))
    if not all(pid in table for pid in ids):
        return None
    return {pid: tuple(table[pid]) for pid in ids}
