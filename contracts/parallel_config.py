"""The scale-out parts of RunConfig: LoRA adapters (``model.lora``) and how several processes share
the training (``distributed``). Decision records: docs/decisions/0050–0053."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from contracts.frozen import Frozen

MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


class LoraConfig(Frozen):
    """Low-rank adapters (LoRA, through ``peft``) on the policy's linear layers; the base weights stay
    frozen. The reference πref is the same model with its adapters switched off (no second copy in
    memory); checkpoints hold the adapters (and their optimizer state) only."""

    r: int = Field(16, ge=1, le=1024, description="Rank of each adapter's A (r × in) and B (out × r).")
    alpha: float = Field(
        32.0,
        gt=0.0,
        le=4096.0,
        description="Scale numerator: the adapter's update is multiplied by alpha / r.",
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on the adapter's input (0: the step is deterministic)."
    )
    target_modules: tuple[str, ...] | Literal["all-linear"] = Field(
        "all-linear",
        description=(
            "Module names (or name suffixes, e.g. q_proj, v_proj, query_key_value) that get adapters; "
            "'all-linear' takes every linear layer of the decoder (never the output head)."
        ),
    )
    export: Literal["adapter", "merged", "none"] = Field(
        "adapter",
        description=(
            "What the finished run writes next to its last checkpoint: 'adapter' a peft folder "
            "(adapter_model.safetensors + adapter_config.json), 'merged' the base with the adapters "
            "folded in (a from_pretrained folder, model.safetensors + config.json), 'none' nothing."
        ),
    )

    @field_validator("target_modules")
    @classmethod
    def _names(cls, value: tuple[str, ...] | str) -> tuple[str, ...] | str:
        if isinstance(value, str):
            return value
        if not value:
            raise ValueError("name at least one module, or use 'all-linear'")
        for name in value:
            if len(name) > 200 or not MODULE_NAME.match(name):
                raise ValueError(f"'{name[:60]}' is not a module name (letters, digits, _ and .)")
        return value


class DistributedConfig(Frozen):
    """How ``num_processes`` processes (torchrun; one per GPU) share a run.

    strategy ``ddp``: every process holds the whole model; gradients are averaged by torch's
    DistributedDataParallel (bucketed all-reduce overlapped with the backward pass, no communication
    during accumulation). ``fsdp``: FSDP2 (``fully_shard`` per decoder layer, then the rest) shards
    parameters, gradients and optimizer state over the processes (bf16 parameters on GPU); checkpoints
    are sharded (torch.distributed.checkpoint). ``auto``: one process trains unwrapped; several use
    ddp when the estimated per-process training state (weights, gradients, AdamW moments and a
    reference copy: 16–20 bytes per trainable parameter, 4 per frozen one) fits in ``fit_fraction`` of
    one GPU's memory, else fsdp; on CPU (gloo) always ddp. With one process, ``fsdp`` still shards
    over a world of one (bf16 parameters on GPU), ``ddp`` does nothing.
    """

    strategy: Literal["auto", "ddp", "fsdp"] = Field(
        "auto", description="Data parallel (ddp), fully sharded (fsdp) or chosen by the rule above (auto)."
    )
    fit_fraction: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="auto only: the share of one GPU's memory the model's training state may take under ddp "
        "(the rest is left to activations).",
    )
    bucket_cap_mb: int = Field(
        25, ge=1, le=1024, description="ddp: gradient bucket size in MiB (torch's default, 25)."
    )
    reshard_after_forward: bool = Field(
        True,
        description="fsdp: free each layer's gathered parameters after its forward and gather them again "
        "in backward (less memory, one more all-gather per layer).",
    )
