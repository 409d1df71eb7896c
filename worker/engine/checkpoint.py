"""Checkpoints: everything needed for a resumed run to equal an uninterrupted one.

Layout of a checkpoint folder: ``state.pt`` (scheduler, calibrator, 3D monitor, data position, RNG
states, step; read back with ``weights_only=True`` so no pickle code ever runs) and the weights:

- one process or DDP: ``model.safetensors``, the trainable tensors (the whole policy; with LoRA the
  adapters only), written by rank 0, and the optimizer state inside ``state.pt``;
- FSDP: ``sharded/``, a torch.distributed.checkpoint folder every rank writes its shards of the
  trainable parameters and of the optimizer state into (``save_sharded``); it loads back into any
  number of processes.

A finished LoRA run may also hold its export (``adapter/`` or ``merged/``, model/lora.py).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from worker.engine import distributed
from worker.engine.distributed import World

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"
SHARDED_DIR = "sharded"
# Frozen parameters (a LoRA run's base) come back from the model's source, not the checkpoint; so
# the model's state dict is partial and loads with strict=False, while dcp.load itself fails on any
# trainable tensor the checkpoint lacks.
_OPTIONS = StateDictOptions(ignore_frozen_params=True, strict=False)


def rng_state() -> dict[str, Any]:
    """Python and torch (CPU, CUDA) RNG states as tensors and lists."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores what ``rng_state`` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, tensors: dict[str, Tensor], state: dict[str, Any]) -> Path:
    """Writes the checkpoint atomically (a temporary folder renamed into place); returns ``folder``.

    tensors: the weights to keep by state-dict name (the policy's, or its adapters)."""
    tmp = _fresh_tmp(folder)
    tensors = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    # the step in the header's metadata lets the API read a checkpoint's step without torch
    save_file(_dedupe_shared(tensors), tmp / MODEL_FILE, metadata={"step": str(state.get("step", ""))})
    torch.save({**state, "rng": rng_state()}, tmp / STATE_FILE)
    return _swap_in(tmp, folder)


def save_sharded(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], world: World
) -> Path:
    """Every rank: the FSDP checkpoint (trainable parameters and optimizer state in shards, the rest
    of ``state`` from rank 0), atomically like ``save_checkpoint``. Collective."""
    tmp = folder.with_name(folder.name + ".tmp")
    if world.is_main:
        _fresh_tmp(folder)
    distributed.barrier(world)
    model_state, optimizer_state = get_state_dict(model, optimizer, options=_OPTIONS)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=tmp / SHARDED_DIR)
    if world.is_main:
        torch.save({**state, "rng": rng_state()}, tmp / STATE_FILE)
        _swap_in(tmp, folder)
    distributed.barrier(world)
    return folder


def load_sharded(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Every rank: loads what ``save_sharded`` wrote (into any number of processes) and returns the
    state dict (RNG already restored). Collective."""
    model_state, optimizer_state = get_state_dict(model, optimizer, options=_OPTIONS)
    loaded = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(loaded, checkpoint_id=folder / SHARDED_DIR)
    set_state_dict(
        model,
        optimizer,
        model_state_dict=loaded["model"],
        optim_state_dict=loaded["optimizer"],
        options=_OPTIONS,
    )
    state = torch.load(folder / STATE_FILE, weights_only=True)
    set_rng_state(state.pop("rng"))
    return state


def _fresh_tmp(folder: Path) -> Path:
    tmp = folder.with_name(folder.name + ".tmp")
    _remove(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _swap_in(tmp: Path, folder: Path) -> Path:
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        _remove(old)
        folder.rename(old)  # the previous checkpoint stays whole until the new one is in place
    tmp.rename(folder)
    _remove(old)
    return folder


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _dedupe_shared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors sharing memory (tied embeddings): clone the duplicates."""
    seen: set[int] = set()
    out = {}
    for name, tensor in tensors.items():
        pointer = tensor.untyped_storage().data_ptr()
        out[name] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return out


def load_checkpoint(folder: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The weights by name and the state dict (RNG already restored) of a ``save_checkpoint`` folder."""
    tensors = load_file(folder / MODEL_FILE)
    state = torch.load(folder / STATE_FILE, weights_only=True)
    set_rng_state(state.pop("rng"))
    return tensors, state


def is_sharded(folder: Path) -> bool:
    """True when the checkpoint in ``folder`` was written by ``save_sharded``."""
    return (folder / SHARDED_DIR / ".metadata").is_file()


def has_checkpoint(folder: Path | None) -> bool:
    """True when ``folder`` holds a complete checkpoint; a kill between the two renames of
    ``save_checkpoint`` is repaired by putting the previous checkpoint back."""
    if folder is None:
        return False
    old = folder.with_name(folder.name + ".old")
    if not folder.exists() and (old / STATE_FILE).is_file():
        old.rename(folder)
    weights = (folder / MODEL_FILE).is_file() or is_sharded(folder)
    return weights and (folder / STATE_FILE).is_file()
