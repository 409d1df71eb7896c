"""Probe sets for dispersion (SCIENCE.md §C.5 D3, "Real LM, probe set").

Held-out prompts, each with four groups of responses: its ``chosen`` and ``rejected`` responses,
``unseen`` responses (``unseen_samples`` draws from πref at T = 1, taken before the first update and
fixed for the run; a draw equal to the pair's chosen or rejected is left out), and a ``mismatch``
response (the next probe prompt's chosen). Every ``every`` steps the policy scores all of them and the
mean per-token log-ratio ρ̄_g = mean over the group of (s_θ − s_ref)/n is emitted as
``probe/logratio/<group>``; s_ref was computed once, before the first update, and is cached (and kept
in the checkpoint). Dispersion shows as ρ̄_chosen and ρ̄_rejected falling while ρ̄_unseen rises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from contracts import metric_keys as mk
from contracts.config import ProbeConfig
from worker.engine.data.pairs import IGNORE_INDEX, PairBatch, TokenizedPair
from worker.engine.evaluation.generation import sample
from worker.engine.model.scoring import response_logps

GROUP_KEYS = {
    "chosen": mk.PROBE_LOGRATIO_CHOSEN,
    "rejected": mk.PROBE_LOGRATIO_REJECTED,
    "unseen": mk.PROBE_LOGRATIO_UNSEEN,
    "mismatch": mk.PROBE_LOGRATIO_MISMATCH,
}
Sequence_ = tuple[str, tuple[int, ...], tuple[int, ...]]  # (group, prompt ids, response ids)


def probe_batch(sequences: Sequence[Sequence_], pad_id: int) -> PairBatch:
    """Right-padded rows prompt+response with labels on response tokens only (a PairBatch whose rows
    are not chosen/rejected halves; only ``response_logps`` reads it)."""
    width = max(len(p) + len(r) for _, p, r in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, IGNORE_INDEX)
    for row, (_, prompt, response) in enumerate(sequences):
        end = len(prompt) + len(response)
        ids[row, :end] = torch.tensor(prompt + response)
        mask[row, :end] = 1
        labels[row, len(prompt) : end] = torch.tensor(response)
    return PairBatch(ids, mask, labels, [], len(sequences))


class ProbeSet:
    """The probe sequences of one run and their cached reference log-probs (module docstring)."""

    def __init__(
        self,
        config: ProbeConfig,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        items: Sequence[TokenizedPair],
        seed: int,
        batch_size: int = 32,
    ) -> None:
        self.config = config
        self.model, self.tokenizer = model, tokenizer
        self.items = list(items[: config.num_prompts])
        self.seed, self.batch_size = seed, batch_size
        self.pad_id = int(tokenizer.pad_token_id)
        self.sequences: list[Sequence_] = []
        self.reference = torch.zeros(0)

    def due(self, step: int) -> bool:
        return bool(self.config.every) and step % self.config.every == 0

    def prepare(self) -> None:
        """Builds the groups and caches s_ref (call before the first update, while policy = πref)."""
        items, count = self.items, self.config.unseen_samples
        sequences: list[Sequence_] = []
        for item in items:
            sequences += [
                ("chosen", item.prompt_ids, item.chosen_ids),
                ("rejected", item.prompt_ids, item.rejected_ids),
            ]
        prompts = [item.prompt_ids for item in items for _ in range(count)]
        drawn = sample(self.model, self.tokenizer, prompts, 1.0, self.config.max_new_tokens, self.seed)
        for index, draw in enumerate(drawn):
            item = items[index // count]
            if draw.ids and draw.ids not in (item.chosen_ids, item.rejected_ids):
                sequences.append(("unseen", item.prompt_ids, draw.ids))
        if len(items) > 1:
            sequences += [
                ("mismatch", item.prompt_ids, items[(i + 1) % len(items)].chosen_ids)
                for i, item in enumerate(items)
            ]
        self.sequences = sequences
        self.reference = self._scores()[0]

    def _scores(self) -> tuple[Tensor, Tensor]:
        """(summed log-probs, token counts) of every probe sequence under the current model, on CPU."""
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        sums, counts = [], []
        with torch.no_grad():
            for start in range(0, len(self.sequences), self.batch_size):
                chunk = self.sequences[start : start + self.batch_size]
                logps, tokens = response_logps(self.model, probe_batch(chunk, self.pad_id).to(device))
                sums.append(logps.double().cpu())
                counts.append(tokens.cpu())
        self.model.train(was_training)
        return torch.cat(sums), torch.cat(counts)

    def measure(self) -> dict[str, float]:
        """ρ̄_g per group with at least one sequence, keyed by ``probe/logratio/<group>``."""
        policy, counts = self._scores()
        per_token = (policy - self.reference) / counts.clamp(min=1)
        values = {}
        for group, key in GROUP_KEYS.items():
            rows = [i for i, (g, _, _) in enumerate(self.sequences) if g == group]
            if rows:
                values[key] = float(per_token[rows].mean())
        return {k: v for k, v in values.items() if not math.isnan(v)}

    def state_dict(self) -> dict:
        return {
            "sequences": [
                [group, list(prompt), list(response)] for group, prompt, response in self.sequences
            ],
            "reference": self.reference,
        }

    def load_state_dict(self, state: dict) -> None:
        self.sequences = [(g, tuple(p), tuple(r)) for g, p, r in state["sequences"]]
        self.reference = state["reference"]
