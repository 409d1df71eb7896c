"""Where a submitted RunConfig may read from: model and dataset paths must resolve (``..`` and
symlinks followed) to a place under a configured root; a model folder must not ask for remote code
and must hold safetensors or GGUF weights. Accepted paths are rewritten absolute and resolved, so the
worker reads exactly what was checked, whatever its working directory."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from backend.api.errors import Invalid
from contracts.config import RunConfig

HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?(:[\w.-]+)?$")
SAFE_WEIGHTS = ("*.safetensors", "*.gguf")
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")
CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json")


def checked(config: RunConfig, model_roots: Sequence[Path], dataset_roots: Sequence[Path]) -> RunConfig:
    """``config`` with its model and data paths resolved, or Invalid naming the field."""
    model = config.model
    model_update: dict[str, object] = {}
    if model.source in ("pretrained", "gguf") and model.path:
        folder = under_root(model.path, model_roots, ("model", "path"))
        if model.source == "pretrained":
            _check_model_folder(folder, model_roots)
        model_update["path"] = str(folder)
    if model.source == "gguf" and model.gguf_file:
        _check_gguf(model_update.get("path"), model.gguf_file, model_roots)
    data_update: dict[str, object] = {}
    data = config.data
    if data.source == "hub":
        for field in ("path", "eval_path"):
            _check_hub_name(getattr(data, field), field)
    elif data.source == "file":
        for field in ("path", "eval_path"):
            if value := getattr(data, field):
                data_update[field] = str(under_root(value, dataset_roots, ("data", field), must_exist=True))
    return config.model_copy(
        update={
            "model": model.model_copy(update=model_update),
            "data": data.model_copy(update=data_update),
        }
    )


def under_root(raw: str, roots: Sequence[Path], field: tuple[str, str], must_exist: bool = True) -> Path:
    """``raw`` resolved (symlinks followed, relative to the working directory); Invalid unless it lies
    under one of ``roots`` (and exists, when ``must_exist``)."""
    loc = ("body", *field)
    try:
        path = Path(raw).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise Invalid(loc, f"cannot resolve '{raw}': {exc}") from exc
    if not any(path.is_relative_to(root.resolve()) for root in roots):
        allowed = ", ".join(str(root) for root in roots) or "(none configured)"
        raise Invalid(loc, f"'{raw}' resolves outside the allowed folders ({allowed})", "path_not_allowed")
    if must_exist and not path.exists():
        raise Invalid(loc, f"'{raw}' does not exist", "path_missing")
    return path


def _check_model_folder(folder: Path, roots: Sequence[Path]) -> None:
    loc = ("body", "model", "path")
    if not folder.is_dir():
        raise Invalid(loc, f"'{folder}' is not a folder with a saved model")
    for entry in folder.iterdir():
        if entry.is_symlink():
            under_root(str(entry), roots, ("model", "path"))
    for name in CODE_CONFIGS:
        if _asks_for_code(folder / name):
            message = f"{name} asks for remote code (auto_map); remote code is never run"
            raise Invalid(loc, message, "remote_code")
    if not any(next(folder.glob(pattern), None) for pattern in SAFE_WEIGHTS):
        pickled = any(next(folder.glob(pattern), None) for pattern in PICKLE_WEIGHTS)
        reason = "only pickle weights (.bin/.pt/.pkl)" if pickled else "no weights"
        raise Invalid(loc, f"'{folder}' has {reason}; safetensors or GGUF weights are required", "weights")


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
        under_root(str(Path(folder) / name), roots, ("model", "gguf_file"))


def _check_hub_name(value: str | None, field: str) -> None:
    if value is not None and (not HUB_NAME.match(value) or ".." in value):
        message = "expected a hub dataset name like 'org/name' or 'org/name:split'"
        raise Invalid(("body", "data", field), message)
