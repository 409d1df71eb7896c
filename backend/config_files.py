"""Run configs from YAML: safe loading (no python tags, no aliases), ``--set dotted.key=value``
overrides, and the presets shipped in ``presets/``. Shared by the CLI and the API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from contracts.config import RunConfig
from contracts.user_errors import UserError
from contracts.validation_messages import explain

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"
MAX_CONFIG_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_INT_DIGITS = 40
INTEGER = re.compile(r"[-+]?(0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+|[0-9][0-9_:]*)")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(UserError):
    """A config that cannot be used; the message names the field or line and the fix."""


def parse_yaml(text: str, source: str = "config") -> dict[str, Any]:
    """A YAML mapping parsed with safe_load within budgets: at most MAX_CONFIG_BYTES, MAX_DEPTH levels
    of nesting and MAX_INT_DIGITS digits per integer; aliases and anchors are refused (no alias
    bombs). Every refusal is a ConfigError naming the line (and the key path, for an integer). The
    events are checked first, so a bad document is refused before anything is built from it."""
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        _check_events(yaml.parse(text, Loader=_LOADER), source)
        data = yaml.load(text, Loader=_LOADER)  # a safe loader: CSafeLoader when libyaml is built
    except ConfigError:
        raise
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # a value the budget did not foresee
        raise ConfigError(f"{source}: cannot read a value ({type(exc).__name__})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of config sections")
    return data


class _Place:
    """Where the event stream is: one frame per open mapping (its current key, whether a key is
    expected next) or sequence (the index of its next item)."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []

    def path(self) -> str:
        parts = [str(frame[1]) for frame in self.frames if frame[1] is not None]
        return ".".join(parts) or "(top)"

    def node(self, value: str | None) -> bool:
        """A node starts; True when it is a mapping key (``value``: a scalar's text, else None)."""
        if self.frames and self.frames[-1][0] == "map" and self.frames[-1][2]:
            self.frames[-1][1] = value if value is not None else "?"
            return True
        return False

    def done(self) -> None:
        """A node (scalar or collection) ended: the parent expects its next key, value or item."""
        if not self.frames:
            return
        frame = self.frames[-1]
        if frame[0] == "map":
            frame[2] = not frame[2]
        else:
            frame[1] += 1


def _check_events(events: Iterator[yaml.Event], source: str) -> None:
    place = _Place()
    for event in events:
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ConfigError(f"{source}:{line}: YAML anchors/aliases are not allowed; write values out")
        if isinstance(event, yaml.ScalarEvent):
            is_key = place.node(event.value)
            if not is_key and not event.style and INTEGER.fullmatch(event.value):
                digits = len(event.value.lstrip("+-").replace("_", "").replace(":", ""))
                if digits > MAX_INT_DIGITS:
                    message = f"an integer of {digits} digits (at most {MAX_INT_DIGITS})"
                    raise ConfigError(f"{source}:{line}: {place.path()}: {message}")
            place.done()
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            place.node(None)
            if len(place.frames) >= MAX_DEPTH:
                raise ConfigError(f"{source}:{line}: nested deeper than {MAX_DEPTH} levels")
            frame = ["map", None, True] if isinstance(event, yaml.MappingStartEvent) else ["seq", 0, False]
            place.frames.append(frame)
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            place.frames.pop()
            place.done()


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
