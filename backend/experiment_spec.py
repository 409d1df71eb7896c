"""Experiment presets (``presets/experiments/NAME.yaml``): a group of runs launched together. Read by
the CLI (``alignscope experiment``, which runs them) and by the API (which lists and launches them),
so the spec lives in the backend, which never imports the worker.

A spec has a ``base`` RunConfig mapping shared by every run, ``runs`` (a label and the mapping merged
over the base), ``seeds`` (each run once per seed), an optional ``sweep`` (each run once per value of
one dotted key, e.g. the high-gap fraction), optional stages run first — ``warmup`` (SFT of a base
model, sft.py), ``other_model`` (a second, weaker SFT model), ``reward_model`` (train-rm),
``scenarios`` (on/off-policy rows, scenarios.py) — and ``quick``, the overrides of ``--quick``.

Placeholders, replaced in run configs where a whole string equals them: ``{warmup}`` (the SFT model
directory), ``{reward_model}`` (the reward model directory), ``{scenario:NAME}`` (the JSONL file of
that scenario's rows; ``{scenario:eval}`` the held-out pairs). ``summary`` picks the summary
builder; ``paper`` holds the numbers printed beside ours, with their citation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend.config_files import PRESET_DIR, ConfigError, apply_overrides, describe, parse_yaml

EXPERIMENT_DIR = PRESET_DIR / "experiments"


class Strict(BaseModel):
    """Frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RunSpec(Strict):
    """One configuration: its label in the summary and the mapping merged over ``base``."""

    label: str = Field(min_length=1, max_length=100)
    set: dict[str, Any] = {}


class Sweep(Strict):
    """Every run once per value of the dotted ``key``; ``label`` formats the column (``{value:.0%}``)."""

    key: str
    values: list[Any] = Field(min_length=1)
    label: str = "{value}"


class Warmup(Strict):
    """SFT stage: ``model`` and ``data`` are RunConfig sections; ``steps`` AdamW steps at ``lr``."""

    model: dict[str, Any]
    data: dict[str, Any]
    steps: int = Field(300, ge=1)
    lr: float = Field(2e-3, gt=0)
    batch_size: int = Field(32, ge=1)
    seed: int = 0


class ScenarioStage(Strict):
    """Prompts (a RunConfig ``data`` section) on which the warm-up model's samples are ranked, and
    held-out pairs (``eval_data``) written to ``{scenario:eval}`` for the runs' win rates."""

    data: dict[str, Any]
    eval_data: dict[str, Any]
    samples_per_prompt: int = Field(4, ge=2, le=16)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    max_new_tokens: int = Field(24, ge=1, le=512)


class Quick(Strict):
    """What ``--quick`` changes: overrides of ``base``, seeds, warm-up steps, sweep values."""

    overrides: list[str] = []
    seeds: list[int] | None = None
    warmup_steps: int | None = None
    sweep_values: list[Any] | None = None


class ExperimentSpec(Strict):
    """One experiment preset (module docstring)."""

    name: str
    title: str
    description: str = ""
    summary: Literal["win_rates", "toy", "label_noise"] = "win_rates"
    base: dict[str, Any]
    runs: list[RunSpec] = Field(min_length=1)
    seeds: list[int] = [0]
    sweep: Sweep | None = None
    warmup: Warmup | None = None
    other_model: Warmup | None = None
    reward_model: dict[str, Any] | None = None
    scenarios: ScenarioStage | None = None
    quick: Quick = Quick()
    paper: dict[str, Any] = {}
    runtime_note: str = ""


def list_experiments() -> list[str]:
    return sorted(p.stem for p in EXPERIMENT_DIR.glob("*.yaml"))


def load_experiment(source: str) -> ExperimentSpec:
    """A spec from a name in presets/experiments/ or a YAML path; ConfigError names the problem."""
    path = Path(source)
    if not path.is_file():
        if source not in list_experiments():
            raise ConfigError(f"unknown experiment '{source}'; known: {', '.join(list_experiments())}")
        path = EXPERIMENT_DIR / f"{source}.yaml"
    data = parse_yaml(path.read_text(), str(path))
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}:\n{describe(exc, ExperimentSpec)}") from exc


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``update`` wins, nested mappings merged."""
    out = dict(base)
    for key, value in update.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def substitute(data: Any, values: dict[str, str]) -> Any:
    """``data`` with every string equal to a key of ``values`` replaced by its value."""
    if isinstance(data, dict):
        return {k: substitute(v, values) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute(v, values) for v in data]
    return values.get(data, data) if isinstance(data, str) else data


def planned_runs(
    spec: ExperimentSpec, quick: bool, seeds: list[int] | None = None
) -> list[tuple[str, str, int, dict[str, Any]]]:
    """(label, column, seed, RunConfig mapping) of every run, in launch order (placeholders kept).
    ``--quick`` overrides apply to the base, so a run's own settings win over them; ``seeds`` replaces
    the spec's seeds."""
    seeds = seeds or ((spec.quick.seeds or spec.seeds) if quick else spec.seeds)
    sweep_values = spec.sweep.values if spec.sweep else [None]
    if quick and spec.sweep and spec.quick.sweep_values:
        sweep_values = spec.quick.sweep_values
    planned = []
    for value in sweep_values:
        for run in spec.runs:
            for seed in seeds:
                base = apply_overrides(spec.base, spec.quick.overrides) if quick else spec.base
                data = merge(base, run.set)
                overrides = [f"seed={seed}"]
                column = ""
                if spec.sweep is not None:
                    overrides.append(f"{spec.sweep.key}={value}")
                    column = spec.sweep.label.format(value=value)
                planned.append((run.label, column, seed, apply_overrides(data, overrides)))
    return planned


def step_counts(spec: ExperimentSpec, quick: bool) -> list[int]:
    """The distinct ``optim.max_steps`` of the runs a group trains (what its description must say)."""
    return sorted({int(data.get("optim", {}).get("max_steps", 0)) for *_, data in planned_runs(spec, quick)})


def run_count(spec: ExperimentSpec, quick: bool, seeds: list[int] | None = None) -> int:
    """Runs the group records: the planned runs, plus the reward model's when the spec trains one."""
    return len(planned_runs(spec, quick, seeds)) + (spec.reward_model is not None)


def group_name(spec: ExperimentSpec, quick: bool, now: float | None = None) -> str:
    """``NAME[-quick]-YYYYmmdd-HHMMSS`` (local time of ``now``, default the current time)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{spec.name}{'-quick' if quick else ''}-{stamp}"


def wants_gpu(spec: ExperimentSpec) -> bool:
    """True when the spec's runs ask for ``device: cuda`` (its group then goes to the gpu queue)."""
    return spec.base.get("device") == "cuda"
