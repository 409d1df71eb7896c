"""LoRA through peft: adapters on a loaded policy, the reference as the same model with its adapters
off, the adapters' tensors for checkpoints, and the export of a finished run.

``attach`` injects peft's LoRA layers into the Hugging Face model and returns the ``PeftModel``; the
loop keeps training the injected model itself (``peft_model.get_base_model()``), so every scoring
path (the lean GPT-NeoX forward, prompt sharing, the chunked head) sees an ordinary transformers
model whose linear layers now add ``(alpha / r) · B A x``. With ``adapters_off`` each LoRA layer
returns its base layer's output unchanged: that is πref, computed from the very tensors of the base
model, so no second copy is kept (docs/decisions/0051-lora-through-peft.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import peft
import torch
from safetensors.torch import save_file
from torch import Tensor, nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from contracts.parallel_config import LoraConfig

ADAPTER_FILE = "adapter_model.safetensors"


def attach(model: PreTrainedModel, spec: LoraConfig) -> peft.PeftModel:
    """``model`` with LoRA adapters on ``spec.target_modules`` (B starts at zero, so the wrapped
    model computes exactly what ``model`` did); only the adapters require gradients."""
    targets = spec.target_modules if isinstance(spec.target_modules, str) else list(spec.target_modules)
    config = peft.LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        wrapped = peft.get_peft_model(model, config)
    except ValueError as exc:  # peft: "Target modules {...} not found in the base model"
        raise ValueError(f"model.lora.target_modules: {exc}") from exc
    if not any(p.requires_grad for p in wrapped.parameters()):
        raise ValueError("model.lora.target_modules matched no trainable layer")
    return wrapped


@contextlib.contextmanager
def adapters_off(model: nn.Module) -> Iterator[None]:
    """Every LoRA layer of ``model`` returns its base layer's output inside the block (πref).

    Sets the layers' ``_disable_adapters`` flag, which their forward reads, and nothing else: peft's
    ``disable_adapter_layers`` also flips the adapters' ``requires_grad``, which DDP and FSDP2 fixed
    at wrapping time and must not see change between steps."""
    layers = [m for m in model.modules() if isinstance(m, peft.tuners.lora.LoraLayer)]
    for layer in layers:
        layer._disable_adapters = True
    try:
        yield
    finally:
        for layer in layers:
            layer._disable_adapters = False


def has_adapters(model: nn.Module) -> bool:
    """True when ``model`` holds LoRA layers."""
    return any(isinstance(m, peft.tuners.lora.LoraLayer) for m in model.modules())


def trainable_state(model: nn.Module) -> dict[str, Tensor]:
    """The tensors a checkpoint holds: every parameter that requires gradients (with LoRA: the
    adapters only), by its name in ``model.state_dict()``."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    return {name: t for name, t in model.state_dict().items() if name in trainable}


def load_trainable_state(model: nn.Module, tensors: dict[str, Tensor]) -> None:
    """Loads what ``trainable_state`` returned; every trainable parameter must be in it, nothing else."""
    expected = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors))[:3], sorted(set(tensors) - expected)[:3]
        raise ValueError(
            f"the checkpoint's adapters do not match model.lora (missing {missing}, unexpected {extra}): "
            "resume with the model.lora settings the run started with"
        )
    model.load_state_dict(tensors, strict=False)


def export(
    peft_model: peft.PeftModel,
    spec: LoraConfig,
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
    adapters: dict[str, Tensor] | None = None,
) -> Path | None:
    """Writes the finished run's adapters (``spec.export``) into ``folder`` and returns it.

    ``adapter``: a peft folder (``PeftModel.from_pretrained(base, folder)`` loads it); ``merged``: the
    base model with ``(alpha / r)·B A`` added to each adapted weight, saved as a ``from_pretrained``
    folder with the tokenizer. ``adapters`` (full tensors by state-dict name) replaces the live ones,
    for a model whose own are sharded. Merging changes ``peft_model`` in place: call it last."""
    if spec.export == "none":
        return None
    folder.mkdir(parents=True, exist_ok=True)
    if adapters is not None:
        load_trainable_state(peft_model.get_base_model(), adapters)
    if spec.export == "adapter":
        weights = peft.get_peft_model_state_dict(peft_model)
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, folder / ADAPTER_FILE)
        peft_model.peft_config["default"].save_pretrained(str(folder))
    else:
        merged = peft_model.merge_and_unload()
        with torch.no_grad():
            merged.save_pretrained(str(folder), safe_serialization=True)
        tokenizer.save_pretrained(str(folder))
    return folder
