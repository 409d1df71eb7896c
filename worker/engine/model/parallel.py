"""The policy as one or several processes train it (unwrapped, torch DDP or FSDP2), and its reference.

``wrap`` puts the policy's scoring forward into one module (``PairScorer``), so that DDP and FSDP2
see every forward through their own hooks (the chunked head reads the head's weight directly; inside
the root module's forward that is the gathered one), and wraps it as ``distributed.strategy`` says
(``resolve_strategy``; docs/decisions/0050-ddp-and-fsdp2.md):

- ``none`` (one process): the scoring function called directly; the single-process path is unchanged.
- ``ddp``: torch's bucketed all-reduce, overlapped with the backward pass; ``accumulating`` turns it
  off (``no_sync``) for every micro-batch but a step's last.
- ``fsdp``: ``fully_shard`` on each decoder layer (the classes transformers names in
  ``_no_split_modules``), then on the scorer (embeddings, final norm, head); bf16 parameters with
  float32 gradient reduction on GPU, float32 on CPU. Gradients are reduce-scattered after every
  micro-batch (sharded gradients accumulate; skipping that would keep whole gradients alive). The
  lean GPT-NeoX forward steps aside (it calls layer parts directly, past FSDP's hooks).

Both wrappers average gradients over processes; the objective scales each rank's loss so that the
average is the global masked mean (objective.py). ``reference_forward`` scores πref: the policy with
its LoRA adapters off, a frozen copy (sharded like the policy under FSDP), or the policy itself
before its first update (to precompute the reference once).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

from contracts.config import RunConfig
from worker.engine import distributed
from worker.engine.distributed import World
from worker.engine.model import lora
from worker.engine.model.scoring import PairScores, score_pairs

Strategy = Literal["none", "ddp", "fsdp"]
ScoreFn = Callable[[nn.Module, Any], PairScores]
STATE_BYTES = {"adamw": 16, "rmsprop": 12}  # per trainable parameter: weight, gradient, optimizer moments
FROZEN_BYTES = 4  # per frozen parameter (float32 weights) and per parameter of a reference copy


class PairScorer(nn.Module):
    """The scores of one micro-batch as one module call: log-probs (2, B) (chosen row first) and
    token counts (2, B), fresh tensors (FSDP2 warns about returned views, which an in-place op would
    detach from its hooks). ``score`` is the family's scoring function (default: a causal LM's)."""

    def __init__(self, model: nn.Module, score: ScoreFn = score_pairs) -> None:
        super().__init__()
        self.model = model
        self._score = score

    def forward(self, batch: Any) -> tuple[Tensor, Tensor]:
        scores = self.scores(batch)
        counts = torch.stack((scores.chosen_tokens, scores.rejected_tokens))
        return torch.stack((scores.chosen, scores.rejected)), counts

    def scores(self, batch: Any) -> PairScores:
        """The scores without the module call (the unwrapped path: no hooks to run)."""
        return self._score(self.model, batch)


def _split(values: Tensor, counts: Tensor) -> PairScores:
    return PairScores(values[0], values[1], counts[0], counts[1])


@dataclass
class Parallel:
    """The wrapped policy: ``scores`` runs its forward, ``parameters`` go to the optimizer."""

    scorer: nn.Module
    strategy: Strategy

    def scores(self, batch: Any) -> PairScores:
        if self.strategy == "none":
            return self.scorer.scores(batch)
        return _split(*self.scorer(batch))

    @property
    def local(self) -> nn.Module:
        """The scorer to call outside training (no DDP bookkeeping; FSDP's root keeps its hooks)."""
        return self.scorer.module if self.strategy == "ddp" else self.scorer

    def parameters(self) -> list[nn.Parameter]:
        """The trainable parameters (FSDP: this rank's shards, as DTensors)."""
        return [p for p in self.scorer.parameters() if p.requires_grad]

    def accumulating(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """The context of one micro-batch's forward and backward: DDP communicates on a step's last only."""
        if self.strategy == "ddp" and not last:
            return self.scorer.no_sync()
        return contextlib.nullcontext()

    def clip_grad_norm(self, max_norm: float) -> Tensor:
        """Clips the gradients to ``max_norm`` (the norm over all shards) and returns that norm as a
        plain 0-dim tensor."""
        norm = torch.nn.utils.clip_grad_norm_(self.parameters(), max_norm)
        return norm.full_tensor() if isinstance(norm, DTensor) else norm


def full_trainable_state(wrapped: Parallel) -> dict[str, Tensor]:
    """Every trainable tensor whole, on CPU, by its name in the policy: on rank 0 (the others get
    nothing). Collective under FSDP."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
    state = get_model_state_dict(wrapped.local, options=options)
    return {name.removeprefix("model."): tensor for name, tensor in state.items()}


def training_bytes(model: nn.Module, optimizer: str, reference_copy: bool) -> int:
    """Estimated bytes one process holds for ``model`` under DDP (activations not counted)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    copy_size = trainable + frozen if reference_copy else 0
    return trainable * STATE_BYTES[optimizer] + (frozen + copy_size) * FROZEN_BYTES


def resolve_strategy(config: RunConfig, world: World, model: nn.Module) -> Strategy:
    """What ``distributed.strategy`` means for this run (the rule is in DistributedConfig's doc)."""
    wanted = config.distributed.strategy
    if wanted == "fsdp":
        return "fsdp"
    if world.size == 1:
        return "none"
    if wanted == "ddp" or world.device.type != "cuda":
        return "ddp"
    reference_copy = config.reference.mode == "copy" and config.model.lora is None
    need = training_bytes(model, config.optim.optimizer, reference_copy)
    total = torch.cuda.get_device_properties(world.device).total_memory
    return "ddp" if need <= config.distributed.fit_fraction * total else "fsdp"


def wrap(
    model: nn.Module, config: RunConfig, world: World, strategy: Strategy, score: ScoreFn = score_pairs
) -> Parallel:
    """``model`` wrapped as ``strategy`` (none/ddp: already on ``world.device``; fsdp: anywhere)."""
    scorer = PairScorer(model, score)
    if strategy == "ddp":
        ddp = DistributedDataParallel(
            scorer,
            device_ids=[world.device.index] if world.device.type == "cuda" else None,
            bucket_cap_mb=config.distributed.bucket_cap_mb,
            forward_sync_buffers=False,  # rotary tables and the like are the same on every rank
            gradient_as_bucket_view=True,
        )
        return Parallel(ddp, strategy)
    if strategy == "fsdp":
        shard(scorer, world, config.distributed.reshard_after_forward)
    return Parallel(scorer, strategy)


def shard(scorer: PairScorer, world: World, reshard_after_forward: bool = True) -> None:
    """FSDP2 over all processes: each decoder layer, then the scorer (the rest of the model); the
    parameters move to ``world.device`` shard by shard."""
    distributed.join_alone(world)
    mesh = init_device_mesh(world.device.type, (world.size,))
    if world.device.type == "cuda":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    else:
        policy = MixedPrecisionPolicy()
    for layer in decoder_layers(scorer.model):
        fully_shard(layer, mesh=mesh, mp_policy=policy, reshard_after_forward=reshard_after_forward)
    fully_shard(scorer, mesh=mesh, mp_policy=policy, reshard_after_forward=reshard_after_forward)


def is_sharded(module: nn.Module) -> bool:
    """True when ``module`` is an FSDP2 root (its forward must run through its hooks)."""
    return isinstance(module, FSDPModule)


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The modules transformers says must not be split (``_no_split_modules``: its decoder layers)."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(
            f"distributed.strategy 'fsdp': {type(model).__name__} names no decoder layer class "
            "(_no_split_modules); use strategy 'ddp'"
        )
    return layers


def reference_forward(
    policy: nn.Module, wrapped: Parallel, reference_copy: nn.Module | None, world: World, score: ScoreFn
) -> Callable[[Any], PairScores]:
    """Scores πref without gradients: ``reference_copy`` (taken before wrapping; sharded here under
    FSDP), else the policy with its LoRA adapters off, else the policy as it is (before its first
    update it is πref: that is how the reference is precomputed)."""
    if reference_copy is not None:
        scorer = PairScorer(reference_copy, score)
        if wrapped.strategy == "fsdp":
            shard(scorer, world)
        return _no_grad(scorer, None)
    return _no_grad(wrapped.local, policy if lora.has_adapters(policy) else None)


def _no_grad(scorer: nn.Module, adapters_of: nn.Module | None) -> Callable[[Any], PairScores]:
    sharded = is_sharded(scorer)

    def forward(batch: Any) -> PairScores:
        off = lora.adapters_off(adapters_of) if adapters_of is not None else contextlib.nullcontext()
        with torch.no_grad(), off:
            return _split(*scorer(batch)) if sharded else scorer.scores(batch)

    return forward
