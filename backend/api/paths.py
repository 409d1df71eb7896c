"""Where a submitted RunConfig may read from: model and dataset paths must resolve (``..`` and
symlinks followed) to a place under a configured root; a model folder must not ask for remote code
and must hold safetensors or GGUF weights. Accepted paths are rewritten absolute and resolved, so the
worker reads exactly what was checked, whatever its working directory."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from backend.api.errors import Invalid, Unprocessable, error_item
from contracts.config import RunConfig
from contracts.deployment import Allowed, refusals, resolve_under, too_big_message

SAFE_WEIGHTS = ("*.safetensors", "*.gguf")
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")
MAX_HEADER_BYTES = 100 * 1024 * 1024
CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json")


def checked(config: RunConfig, allowed: Allowed) -> RunConfig:
    """``config`` with its model and data paths resolved, or a 422 naming every refused field
    (``contracts.deployment.refusals``: the same check the worker repeats before training)."""
    found = refusals(config, allowed)
    if found:
        raise Unprocessable(
            [error_item(("body", *r.field.split(".")), r.message, "not_allowed") for r in found]
        )
    model, data, judge = config.model, config.data, config.evaluation.judge
    model_update: dict[str, object] = {}
    if model.source in ("pretrained", "gguf") and model.path:
        folder = existing(model.path, allowed.model_roots, "model.path")
        if model.source == "pretrained":
            _check_model_folder(folder, allowed)
        model_update["path"] = str(folder)
    if model.source == "gguf" and model.gguf_file:
        _check_gguf(model_update.get("path"), model.gguf_file, allowed.model_roots)
    data_update: dict[str, object] = {}
    for field in ("path", "eval_path"):
        value = getattr(data, field)
        if value and data.source != "hub" and not (field == "path" and data.source in ("constructed", "toy")):
            data_update[field] = str(existing(value, allowed.dataset_roots, f"data.{field}"))
    judge_update = {}
    if judge.path:
        judge_update["path"] = str(existing(judge.path, allowed.model_roots, "evaluation.judge.path"))
    evaluation = config.evaluation.model_copy(update={"judge": judge.model_copy(update=judge_update)})
    return config.model_copy(
        update={
            "model": model.model_copy(update=model_update),
            "data": data.model_copy(update=data_update),
            "evaluation": evaluation,
        }
    )


def existing(raw: str, roots: Sequence[Path], field: str) -> Path:
    """``raw`` resolved under ``roots`` (already checked by ``refusals``); Invalid unless it exists."""
    loc = ("body", *field.split("."))
    path = resolve_under(raw, roots)
    if path is None:
        raise Invalid(loc, f"'{raw}' is outside the folders this deployment allows", "path_not_allowed")
    if not path.exists():
        raise Invalid(loc, f"'{raw}' does not exist", "path_missing")
    return path


def _check_model_folder(folder: Path, allowed: Allowed) -> None:
    loc = ("body", "model", "path")
    roots = allowed.model_roots
    if not folder.is_dir():
        raise Invalid(loc, f"'{folder}' is not a folder with a saved model")
    for entry in folder.iterdir():
        if entry.is_symlink():
            existing(str(entry), roots, "model.path")
    for name in CODE_CONFIGS:
        if _asks_for_code(folder / name):
            message = f"{name} asks for remote code (auto_map); remote code is never run"
            raise Invalid(loc, message, "remote_code")
    if not any(next(folder.glob(pattern), None) for pattern in SAFE_WEIGHTS):
        pickled = any(next(folder.glob(pattern), None) for pattern in PICKLE_WEIGHTS)
        reason = "only pickle weights (.bin/.pt/.pkl)" if pickled else "no weights"
        raise Invalid(loc, f"'{folder}' has {reason}; safetensors or GGUF weights are required", "weights")
    params = sum(safetensors_params(path) for path in folder.glob("*.safetensors"))
    if params > allowed.max_model_params:
        raise Invalid(loc, too_big_message(params, allowed.max_model_params), "model_too_large")


def safetensors_params(path: Path) -> int:
    """Parameters in a .safetensors file, counted from its header (the tensors are not read)."""
    try:
        with path.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 2 <= size <= MAX_HEADER_BYTES:
                raise ValueError("header size out of range")
            header = json.loads(handle.read(size))
        shapes = [entry["shape"] for key, entry in header.items() if key != "__metadata__"]
        return sum(math.prod(int(n) for n in shape) for shape in shapes)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        message = f"'{path.name}' is not a readable safetensors file ({type(exc).__name__})"
        raise Invalid(("body", "model", "path"), message, "weights") from exc


def _asks_for_code(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # unreadable: refuse rather than guess
    return isinstance(data, dict) and bool(data.get("auto_map") or data.get("trust_remote_code"))


def _check_gguf(folder: object, name: str, roots: Sequence[Path]) -> None:
    loc = ("body", "model", "gguf_file")
    if Path(name).name != name or name in ("", ".", "..") or not name.lower().endswith(".gguf"):
        raise Invalid(loc, "must be a plain .gguf file name inside model.path (no folders)")
    if isinstance(folder, str):
        existing(str(Path(folder) / name), roots, "model.gguf_file")
