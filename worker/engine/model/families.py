"""Model families: what the loop needs from a policy, whatever it is.

A family owns the policy, its reference, its pairs and how a micro-batch of pairs is scored. The
language-model family scores token sequences (scoring.py); the toy family (SCIENCE.md §C.3) scores
single categorical responses and adds the toy's exact probability masses as metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from contracts import metric_keys as mk
from contracts.config import RunConfig
from contracts.events import PairText
from worker.alignment import toy
from worker.engine.data.pairs import TokenizedPair, collate, load_pairs
from worker.engine.distributed import World
from worker.engine.model import lora, parallel
from worker.engine.model.loading import cache_dir, fingerprint, frozen_copy, load_policy
from worker.engine.model.scoring import Batch, PairScores, ReferenceScores, precompute_reference, score_pairs
from worker.engine.model.shared_prompt import collate_shared, supports_shared_prompt


class Family(Protocol):
    """What the training loop asks of a model family."""

    policy: nn.Module
    parallel: parallel.Parallel
    strategy: parallel.Strategy
    peft: object | None
    train_items: Sequence[Any]
    eval_items: Sequence[Any]
    stats: object

    def collate(self, items: Sequence[Any]) -> Any: ...

    def pair_ids(self, batch: Any) -> list[str]: ...

    def policy_scores(self, batch: Any) -> PairScores: ...

    def reference_scores(self, batch: Any) -> PairScores: ...

    def texts(self) -> list[PairText]: ...

    def extra_metrics(self) -> dict[str, float]: ...


class LanguageModelFamily:
    """A causal LM (tiny GPT-NeoX, any local pretrained one or GGUF), optionally with LoRA adapters,
    trained on tokenized preference pairs, wrapped for several processes (model/parallel.py)."""

    def __init__(self, config: RunConfig, world: World) -> None:
        model, tokenizer = load_policy(config.model, config.seed)
        self.tokenizer = tokenizer
        self.device = world.device
        loaded = load_pairs(config.data, tokenizer)
        self.train_items: Sequence[TokenizedPair] = loaded.train
        self.eval_items: Sequence[TokenizedPair] = loaded.eval
        self._planted = loaded.planted if config.data.label_noise else None  # for texts() only
        self.stats = loaded.stats
        self.pad_id = int(tokenizer.pad_token_id)
        self.peft = lora.attach(model, config.model.lora) if config.model.lora else None
        model = self.peft.get_base_model() if self.peft else model
        self.strategy = parallel.resolve_strategy(config, world, model)
        self.policy = (model if self.strategy == "fsdp" else model.to(world.device)).train()
        self.share_prompt = config.model.share_prompt and supports_shared_prompt(model)
        on_the_fly = config.reference.mode == "copy"  # with LoRA: the policy with its adapters off
        reference_copy = frozen_copy(self.policy) if on_the_fly and self.peft is None else None
        key = "" if on_the_fly else self._reference_key(config)  # before sharding: whole tensors
        self.parallel = parallel.wrap(self.policy, config, world, self.strategy)
        forward = parallel.reference_forward(self.policy, self.parallel, reference_copy, world, score_pairs)
        if on_the_fly:
            self._reference = ReferenceScores(forward, None)
        else:
            self.policy.eval()
            pairs = [*self.train_items, *self.eval_items]
            table = precompute_reference(
                forward, pairs, self.pad_id, world.device, cache_dir() / "reference", key,
                share_prompt=self.share_prompt, world=world,
            )  # fmt: skip
            self.policy.train()
            self._reference = ReferenceScores(None, table)

    def _reference_key(self, config: RunConfig) -> str:
        """What the precomputed reference depends on: the weights, the lengths, the pairs."""
        lengths = [str(config.data.max_length), str(config.data.max_prompt_length)]
        ids = sorted(p.pair_id for p in (*self.train_items, *self.eval_items))
        return "|".join([fingerprint(self.policy), *lengths, *ids])

    def collate(self, items: Sequence[TokenizedPair]) -> Batch:
        """One micro-batch: prompt-sharing rows when the model supports them (``model.share_prompt``)."""
        batch = collate_shared(items, self.pad_id) if self.share_prompt else collate(items, self.pad_id)
        return batch.to(self.device)

    def pair_ids(self, batch: Batch) -> list[str]:
        return list(batch.pair_ids)

    def policy_scores(self, batch: Batch) -> PairScores:
        return self.parallel.scores(batch)

    def reference_scores(self, batch: Batch) -> PairScores:
        return self._reference(batch, self.device)

    def texts(self) -> list[PairText]:
        def text(p: TokenizedPair, planted: bool | None) -> PairText:
            return PairText(p.pair_id, p.prompt_text, p.chosen_text, p.rejected_text, planted)

        flags = self._planted
        train = [text(p, None if flags is None else p.pair_id in flags) for p in self.train_items]
        return train + [text(p, None) for p in self.eval_items]

    def extra_metrics(self) -> dict[str, float]:
        return {}


@dataclass(frozen=True)
class ToyPair:
    """One toy pair: prompt x ∈ 0..3, chosen and rejected response indices ∈ 0..9."""

    pair_id: str
    prompt: int
    chosen: int
    rejected: int


@dataclass(frozen=True)
class ToyBatch:
    """Index tensors (B,) of a toy micro-batch."""

    pair_ids: list[str]
    prompts: Tensor
    chosen: Tensor
    rejected: Tensor


class ToyFamily:
    """The 3D toy: an SFT-trained MLP policy over 10 responses and its frozen copy as reference."""

    def __init__(self, config: RunConfig, world: World) -> None:
        spec = config.model.toy
        torch.set_num_threads(1)  # (16 × 64) matrices: thread hand-off costs more than the math
        torch.manual_seed(config.seed)
        policy = toy.ToyPolicy(hidden=spec.hidden)
        toy.train_sft(policy, toy.sft_targets(spec.scenario), steps=spec.sft_steps, lr=spec.sft_lr)
        self.device = world.device
        self.policy = policy.to(world.device).train()
        self._reference = frozen_copy(self.policy)
        self.peft = None
        self.strategy = parallel.resolve_strategy(config, world, self.policy)
        self.parallel = parallel.wrap(self.policy, config, world, self.strategy, _toy_scores)
        prompts, chosen, rejected = toy.toy_pairs()
        self.train_items = [
            ToyPair(f"toy-x{int(x)}-w{int(w)}-l{int(lo)}", int(x), int(w), int(lo))
            for x, w, lo in zip(prompts, chosen, rejected, strict=True)
        ]
        self.eval_items: Sequence[ToyPair] = []
        self.stats = {"rows": len(self.train_items), "truncated": 0, "dropped": 0}

    def collate(self, items: Sequence[ToyPair]) -> ToyBatch:
        def column(name: str) -> Tensor:
            return torch.tensor([getattr(p, name) for p in items], device=self.device)

        return ToyBatch([p.pair_id for p in items], column("prompt"), column("chosen"), column("rejected"))

    def pair_ids(self, batch: ToyBatch) -> list[str]:
        return batch.pair_ids

    def policy_scores(self, batch: ToyBatch) -> PairScores:
        return self.parallel.scores(batch)

    def reference_scores(self, batch: ToyBatch) -> PairScores:
        with torch.no_grad():
            return _toy_scores(self._reference, batch)

    def texts(self) -> list[PairText]:
        return [
            PairText(p.pair_id, f"prompt {p.prompt}", f"response {p.chosen}", f"response {p.rejected}")
            for p in self.train_items
        ]

    def extra_metrics(self) -> dict[str, float]:
        masses = toy.toy_masses(self.policy)
        return {
            mk.TOY_PROB_CHOSEN: masses.prob_chosen,
            mk.TOY_PROB_REJECTED: masses.prob_rejected,
            mk.TOY_MASS_UNSEEN: masses.mass_unseen,
            mk.TOY_MASS_OUT_OF_PAIR: masses.mass_out_of_pair,
            mk.TOY_ENTROPY: masses.entropy,
        }


def _toy_scores(model: nn.Module, batch: ToyBatch) -> PairScores:
    logprobs = model(batch.prompts)
    ones = torch.ones_like(batch.prompts)
    chosen = logprobs.gather(1, batch.chosen.unsqueeze(1)).squeeze(1)
    rejected = logprobs.gather(1, batch.rejected.unsqueeze(1)).squeeze(1)
    return PairScores(chosen, rejected, ones, ones)


def build_family(config: RunConfig, world: World) -> Family:
    """The family of ``config.model.source``."""
    if config.model.source == "toy":
        return ToyFamily(config, world)
    return LanguageModelFamily(config, world)
