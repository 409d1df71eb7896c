"""What a deployment lets a submitted run reach, and the one check of a RunConfig against it.

A run config is written by whoever may create runs; the operator decides, in the deployment's
settings, what such a person may make the worker touch:

- judge endpoints: ``evaluation.judge.endpoint`` names one of ``judge_endpoints`` (base URL, the
  environment variable holding its key, the judge models it may be asked for); a config never
  carries a URL or an environment variable name;
- rule judges: ``evaluation.judge.entry_point`` must be in ``rule_judges`` (exact, or
  ``package.module:*`` for every marked function of a module);
- files: ``model.path`` and ``evaluation.judge.path`` under ``model_roots``; ``data.path`` (source
  ``file``) and ``data.eval_path`` (every source but ``hub``) under ``dataset_roots``, after ``..``
  and symlinks are resolved;
- hub datasets: ``data.path``/``data.eval_path`` with source ``hub`` must be in ``hub_datasets``
  (``*``: any name);
- resources: ``num_processes`` ≤ ``max_processes``; a tiny model's parameters ≤ ``max_model_params``
  (a pretrained folder's safetensors are counted by ``backend.api.paths``, which reads the files).

``refusals(config, allowed)`` is called by the API when a run is submitted and again by the worker
before it trains (a row written by other means, or settings that changed since, are caught there).
Each refusal names the config field and the fix; for a path it never says whether the path exists
outside the allowed folders.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, ValidationError

from contracts.config import RunConfig, TinyModelSpec
from contracts.frozen import Frozen

ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"
ENDPOINT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
DEFAULT_MAX_MODEL_PARAMS = 2_000_000_000


class JudgeEndpoint(Frozen):
    """One OpenAI-compatible endpoint the operator allows judges to call."""

    base_url: str = Field(
        ..., max_length=2048, pattern=r"^https?://", description="the endpoint's base URL (…/v1)"
    )
    api_key_env: str | None = Field(
        None, pattern=ENV_NAME, description="environment variable of the worker that holds the key"
    )
    models: tuple[str, ...] = Field(
        ..., min_length=1, description="judge model names a run may ask for ('*': any)"
    )


class Allowed(Frozen):
    """What runs may reach on this deployment (module docstring). Paths are absolute."""

    judge_endpoints: dict[str, JudgeEndpoint] = Field(
        default_factory=dict, description="endpoint name → endpoint (ALIGNSCOPE_JUDGE_ENDPOINTS)"
    )
    rule_judges: tuple[str, ...] = Field((), description="allowed rule-judge entry points")
    model_roots: tuple[Path, ...] = Field((), description="folders models may be read from")
    dataset_roots: tuple[Path, ...] = Field((), description="folders datasets may be read from")
    hub_datasets: tuple[str, ...] = Field((), description="hub dataset names allowed ('*': any)")
    max_processes: int = Field(1, ge=1, description="largest num_processes a run may ask for")
    max_model_params: int = Field(
        DEFAULT_MAX_MODEL_PARAMS, ge=1, description="largest model (parameters) a run may build or load"
    )


@dataclass(frozen=True)
class Refusal:
    """One thing a config may not do here: the dotted config field and why, with the fix."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ConfigRefused(ValueError):
    """A config asks for something the deployment does not allow (raised by the worker)."""

    def __init__(self, found: Sequence[Refusal]) -> None:
        super().__init__("; ".join(str(item) for item in found))
        self.refusals = list(found)


def parse_judge_endpoints(
    text: str | None, source: str = "ALIGNSCOPE_JUDGE_ENDPOINTS"
) -> dict[str, JudgeEndpoint]:
    """``{"name": {"base_url": …, "api_key_env": …, "models": […]}, …}`` from JSON text; ValueError
    naming ``source`` and the endpoint when it is malformed."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{source}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f'{source}: expected an object {{"name": {{"base_url": …, "models": […]}}}}')
    endpoints = {}
    for name, value in data.items():
        if not re.fullmatch(ENDPOINT_NAME, str(name)):
            raise ValueError(f"{source}: endpoint name {name!r} must be letters, digits, '_', '.', '-'")
        try:
            endpoints[name] = JudgeEndpoint.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"{source}: endpoint {name!r}: {exc.errors()[0]['msg']}") from exc
    return endpoints


def refusals(config: RunConfig, allowed: Allowed) -> list[Refusal]:
    """Every field of ``config`` that reaches beyond ``allowed`` (empty: the config may run)."""
    found = [*_path_refusals(config, allowed), *_judge_refusals(config, allowed)]
    if config.num_processes > allowed.max_processes:
        message = f"{config.num_processes} is above this deployment's cap of {allowed.max_processes}"
        found.append(Refusal("num_processes", f"{message} (ALIGNSCOPE_MAX_PROCESSES) — ask for fewer"))
    if config.model.source == "tiny":
        params = tiny_params(config.model.tiny)
        if params > allowed.max_model_params:
            found.append(Refusal("model.tiny", too_big_message(params, allowed.max_model_params)))
    return found


def too_big_message(params: int, cap: int) -> str:
    """The refusal text of a model of ``params`` parameters over ``cap`` (shared with the API)."""
    return (
        f"about {params:,} parameters, above this deployment's cap of {cap:,} "
        "(ALIGNSCOPE_MAX_MODEL_PARAMS) — choose a smaller model"
    )


def tiny_params(spec: TinyModelSpec, vocab: int = 0) -> int:
    """Parameters of the GPT-NeoX a TinyModelSpec builds, without its embeddings (``vocab`` rows
    each for the input embedding and the output head, 0 when unknown)."""
    h, i = spec.hidden_size, spec.intermediate_size
    attention = 3 * h * h + 3 * h + h * h + h  # fused QKV and the output projection, with biases
    mlp = 2 * h * i + i + h
    layer = attention + mlp + 4 * h  # two LayerNorms
    return spec.num_layers * layer + 2 * h + 2 * vocab * h


def _path_refusals(config: RunConfig, allowed: Allowed) -> list[Refusal]:
    model, data, judge = config.model, config.data, config.evaluation.judge
    found = []
    if model.source in ("pretrained", "gguf") and model.path:
        found += _under("model.path", model.path, allowed.model_roots)
    if model.gguf_file is not None and (
        Path(model.gguf_file).name != model.gguf_file or model.gguf_file in ("", ".", "..")
    ):
        found.append(
            Refusal("model.gguf_file", "must be a plain .gguf file name inside model.path (no folders)")
        )
    if judge.path:
        found += _under("evaluation.judge.path", judge.path, allowed.model_roots)
    for name in ("path", "eval_path"):
        value = getattr(data, name)
        if value is None or (name == "path" and data.source in ("constructed", "toy")):
            continue
        if data.source == "hub":
            found += _hub(f"data.{name}", value, allowed.hub_datasets)
        else:
            found += _under(f"data.{name}", value, allowed.dataset_roots)
    return found


def resolve_under(raw: str, roots: Sequence[Path]) -> Path | None:
    """``raw`` resolved (``~``, ``..`` and symlinks followed, relative to the working directory) when
    it lies under one of ``roots``, else None."""
    try:
        path = Path(raw).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return path if any(path.is_relative_to(Path(root).resolve()) for root in roots) else None


def _under(field: str, raw: str, roots: Sequence[Path]) -> list[Refusal]:
    if resolve_under(raw, roots) is not None:
        return []
    folders = ", ".join(str(root) for root in roots) or "(none configured)"
    return [Refusal(field, f"'{raw}' is outside the folders this deployment allows ({folders})")]


def _hub(field: str, raw: str, names: Sequence[str]) -> list[Refusal]:
    name = raw.partition(":")[0]
    if not HUB_NAME.fullmatch(name) or ".." in name:
        return [Refusal(field, "expected a hub dataset name like 'org/name' or 'org/name:split'")]
    if "*" in names or name in names:
        return []
    listed = ", ".join(names) or "none"
    message = f"hub dataset '{name}' is not allowed here (allowed: {listed}; ALIGNSCOPE_HUB_DATASETS)"
    return [Refusal(field, message)]


def _judge_refusals(config: RunConfig, allowed: Allowed) -> list[Refusal]:
    judge = config.evaluation.judge
    found = []
    if judge.entry_point and not entry_point_allowed(judge.entry_point, allowed.rule_judges):
        listed = ", ".join(allowed.rule_judges) or "none"
        message = (
            f"'{judge.entry_point}' is not an allowed rule judge (allowed: {listed}; ALIGNSCOPE_RULE_JUDGES)"
        )
        found.append(Refusal("evaluation.judge.entry_point", message))
    if judge.kind == "openai":
        endpoint = allowed.judge_endpoints.get(judge.endpoint or "")
        if endpoint is None:
            names = ", ".join(sorted(allowed.judge_endpoints)) or "none are configured"
            message = (
                f"unknown judge endpoint '{judge.endpoint}' (known: {names}; ALIGNSCOPE_JUDGE_ENDPOINTS)"
            )
            found.append(Refusal("evaluation.judge.endpoint", message))
        elif "*" not in endpoint.models and judge.model not in endpoint.models:
            models = ", ".join(endpoint.models)
            message = f"'{judge.model}' is not offered by endpoint '{judge.endpoint}' (offered: {models})"
            found.append(Refusal("evaluation.judge.model", message))
    return found


def entry_point_allowed(entry_point: str, allowed: Sequence[str]) -> bool:
    """True when ``entry_point`` is listed, or its module is listed as ``module:*``."""
    module = entry_point.partition(":")[0]
    return entry_point in allowed or f"{module}:*" in allowed


def endpoint_for(name: str | None, environ: Mapping[str, str]) -> JudgeEndpoint:
    """The configured endpoint ``name`` (read from ``environ``'s ALIGNSCOPE_JUDGE_ENDPOINTS), or
    ValueError naming evaluation.judge.endpoint."""
    endpoints = parse_judge_endpoints(environ.get("ALIGNSCOPE_JUDGE_ENDPOINTS"))
    if name not in endpoints:
        raise ValueError(f"evaluation.judge.endpoint: '{name}' is not configured on this worker")
    return endpoints[name]
