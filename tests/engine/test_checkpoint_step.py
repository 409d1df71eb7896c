"""The API reads a checkpoint's step without torch (issue 19 item 1: a resumed run continues its
parent after that step): worker.engine.checkpoint writes it into the safetensors header."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from backend.api.launch import checkpoint_step
from worker.engine.checkpoint import MODEL_FILE, save_checkpoint


def test_the_checkpoint_step_is_readable_from_the_model_file(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path / "ck", nn.Linear(2, 2).state_dict(), {"step": 37})
    assert checkpoint_step(folder / MODEL_FILE) == 37
    assert checkpoint_step(tmp_path / "missing.safetensors") is None
