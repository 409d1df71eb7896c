"""Run configs from YAML: safe loading (no python tags, no aliases), ``--set dotted.key=value``
overrides, and the presets shipped in ``presets/``. Shared by the CLI and the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from contracts.config import RunConfig
from contracts.user_errors import UserError
from contracts.validation_messages import explain

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"
MAX_CONFIG_BYTES = 256 * 1024


class ConfigError(UserError):
    """A config that cannot be used; the message names the field or line and the fix."""


def parse_yaml(text: str, source: str = "config") -> dict[str, Any]:
    """A YAML mapping parsed with safe_load; aliases and anchors are refused (no alias bombs)."""
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                line = event.start_mark.line + 1
                raise ConfigError(f"{source}:{line}: YAML anchors/aliases are not allowed; write values out")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of config sections")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``dotted.key=value`` set (value parsed as YAML scalar)."""
    result = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set '{item}': expected dotted.key=value, e.g. optim.lr=1e-4")
        value = parse_yaml(f"v: {raw}", f"--set {key}")["v"] if raw.strip() else raw
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set '{item}': '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def validate(data: dict[str, Any]) -> RunConfig:
    """RunConfig from a mapping; a ConfigError lists each bad field as ``a.b.c: message``."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from exc


def describe(exc: ValidationError, model: type[BaseModel] = RunConfig) -> str:
    """One line per error: the field as the user wrote it, what is accepted and the fix
    (``contracts.validation_messages``)."""
    return "\n".join(problem.line() for problem in explain(model, exc.errors()))


def list_presets() -> list[str]:
    """Names of the shipped presets (file stems in presets/)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The mapping of preset ``name`` with ``preset: name`` filled in."""
    if name not in list_presets():
        raise ConfigError(f"unknown preset '{name}'; known: {', '.join(list_presets())}")
    data = parse_yaml((PRESET_DIR / f"{name}.yaml").read_text(), f"presets/{name}.yaml")
    return {"preset": name, **data}


def load_config(source: str, overrides: list[str] | None = None) -> RunConfig:
    """A validated RunConfig from a preset name or a YAML file path, with overrides applied."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file '{source}' not found")
        data = parse_yaml(path.read_text(), str(path))
    else:
        data = load_preset(source)
    return validate(apply_overrides(data, overrides or []))


def check_local_paths(config: RunConfig) -> None:
    """ConfigError naming each model or data path of ``config`` that does not exist on this machine
    (the CLI trains in-process: say so before a run is recorded or torch is loaded)."""
    problems = []
    model = config.model
    if model.source in ("pretrained", "gguf") and model.path and not Path(model.path).expanduser().exists():
        fix = "a folder with config.json and *.safetensors" if model.source == "pretrained" else "a folder"
        problems.append(f"model.path: '{model.path}' does not exist — give {fix}, or use model.source: tiny")
    if config.data.source == "file":
        for field in ("path", "eval_path"):
            value = getattr(config.data, field)
            if value and not Path(value).expanduser().exists():
                problems.append(
                    f"data.{field}: '{value}' does not exist — give a .jsonl, .json, .parquet file (or their "
                    ".gz), or use data.source: bundled for the HH-RLHF sample shipped with AlignScope"
                )
    if problems:
        raise ConfigError("\n".join(problems))
