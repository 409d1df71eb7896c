"""Checkpoints: everything needed for a resumed run to equal an uninterrupted one.

Layout of a checkpoint folder: ``model.safetensors`` (policy weights) and ``state.pt`` (optimizer,
scheduler, calibrator, 3D monitor, data position, RNG states, step), read back with
``weights_only=True`` so no pickle code ever runs.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"


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


def save_checkpoint(folder: Path, model: nn.Module, state: dict[str, Any]) -> Path:
    """Writes the checkpoint atomically (a temporary folder renamed into place); returns ``folder``."""
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().contiguous().cpu() for name, t in model.state_dict().items()}
    # the step in the header's metadata lets the API read a checkpoint's step without torch
    save_file(_dedupe_shared(tensors), tmp / MODEL_FILE, metadata={"step": str(state.get("step", ""))})
    torch.save({**state, "rng": rng_state()}, tmp / STATE_FILE)
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        _remove(old)
        folder.rename(old)  # the previous checkpoint stays whole until the new one is in place
    tmp.rename(folder)
    _remove(old)
    return folder


def _remove(folder: Path) -> None:
    if folder.exists():
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()


def _dedupe_shared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors sharing memory (tied embeddings): clone the duplicates."""
    seen: set[int] = set()
    out = {}
    for name, tensor in tensors.items():
        pointer = tensor.untyped_storage().data_ptr()
        out[name] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return out


def load_checkpoint(folder: Path, model: nn.Module) -> dict[str, Any]:
    """Loads the weights into ``model`` and returns the state dict (RNG already restored)."""
    model.load_state_dict(load_file(folder / MODEL_FILE))
    state = torch.load(folder / STATE_FILE, weights_only=True)
    set_rng_state(state.pop("rng"))
    return state


def has_checkpoint(folder: Path | None) -> bool:
    """True when ``folder`` holds a complete checkpoint; a kill between the two renames of
    ``save_checkpoint`` is repaired by putting the previous checkpoint back."""
    if folder is None:
        return False
    old = folder.with_name(folder.name + ".old")
    if not folder.exists() and (old / STATE_FILE).is_file():
        old.rename(folder)
    return (folder / MODEL_FILE).is_file() and (folder / STATE_FILE).is_file()
