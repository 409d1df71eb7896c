"""Deployment settings, read from the environment once through the cached ``get_settings()``.

ALIGNSCOPE_DATA_DIR       where the embedded database and artifacts live (default ./.alignscope)
ALIGNSCOPE_DATABASE_URL   SQLAlchemy URL (default sqlite:///<data_dir>/alignscope.db)
ALIGNSCOPE_BROKER_URL     Celery broker; unset means the embedded broker (chosen by the service)
ALIGNSCOPE_API_TOKEN      bearer token required by the API; unset means no authentication
ALIGNSCOPE_MODEL_ROOTS    os.pathsep-separated folders a launch form may read models from
ALIGNSCOPE_DATASET_ROOTS  os.pathsep-separated folders a launch form may read datasets from
ALIGNSCOPE_JUDGE_ENDPOINTS  JSON {"name": {"base_url", "api_key_env", "models": [...]}}: the only
                          endpoints an openai judge may call (a run names one)
ALIGNSCOPE_RULE_JUDGES    comma-separated rule-judge entry points a run may name ("pkg.mod:*" for a module)
ALIGNSCOPE_HUB_DATASETS   comma-separated hub dataset names a run may load ("*": any; default none)
ALIGNSCOPE_MAX_PROCESSES  largest num_processes of a run (default: this machine's CPU count)
ALIGNSCOPE_MAX_MODEL_PARAMS  largest model a run may build or load, in parameters (default 2e9)

An empty variable counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from contracts.deployment import DEFAULT_MAX_MODEL_PARAMS, Allowed, JudgeEndpoint, parse_judge_endpoints

PREFIX = "ALIGNSCOPE_"
REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseModel):
    """Immutable deployment settings; paths are absolute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path
    database_url: str
    broker_url: str | None = None
    api_token: str | None = None
    model_roots: tuple[Path, ...] = ()
    dataset_roots: tuple[Path, ...] = ()
    judge_endpoints: dict[str, JudgeEndpoint] = Field(default_factory=dict)
    rule_judges: tuple[str, ...] = ()
    hub_datasets: tuple[str, ...] = ()
    max_processes: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    max_model_params: int = Field(DEFAULT_MAX_MODEL_PARAMS, ge=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``environ`` (normally ``os.environ``)."""

        def read(name: str) -> str | None:
            return environ.get(PREFIX + name) or None

        data_dir = Path(read("DATA_DIR") or ".alignscope").expanduser().resolve()
        return cls(
            data_dir=data_dir,
            database_url=read("DATABASE_URL") or f"sqlite:///{data_dir / 'alignscope.db'}",
            broker_url=read("BROKER_URL"),
            api_token=read("API_TOKEN"),
            model_roots=_paths(read("MODEL_ROOTS")),
            dataset_roots=_paths(read("DATASET_ROOTS")),
            judge_endpoints=parse_judge_endpoints(read("JUDGE_ENDPOINTS")),
            rule_judges=_names(read("RULE_JUDGES")),
            hub_datasets=_names(read("HUB_DATASETS")),
            **_numbers(read("MAX_PROCESSES"), read("MAX_MODEL_PARAMS")),
        )

    def allowed(self) -> Allowed:
        """What a submitted run may reach here (contracts.deployment), with the folders filled in."""
        return Allowed(
            judge_endpoints=self.judge_endpoints,
            rule_judges=self.rule_judges,
            model_roots=model_roots(self),
            dataset_roots=dataset_roots(self),
            hub_datasets=self.hub_datasets,
            max_processes=self.max_processes,
            max_model_params=self.max_model_params,
        )


def model_roots(settings: Settings) -> tuple[Path, ...]:
    """Folders a submitted config may load models from: settings.model_roots, else <data_dir>/models."""
    return settings.model_roots or (settings.data_dir / "models",)


def dataset_roots(settings: Settings) -> tuple[Path, ...]:
    """Folders a submitted config may read datasets from: <data_dir>/datasets (where uploads go) and
    settings.dataset_roots. Nothing outside the deployment by default: the HH presets read the sample
    shipped in the package (data.source: bundled), which names no path."""
    return (settings.data_dir / "datasets", *settings.dataset_roots)


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _numbers(processes: str | None, params: str | None) -> dict[str, int]:
    values = {}
    if processes:
        values["max_processes"] = int(processes)
    if params:
        values["max_model_params"] = int(float(params))
    return values


def _paths(value: str | None) -> tuple[Path, ...]:
    """Split an os.pathsep list into absolute paths, skipping empty entries."""
    if not value:
        return ()
    return tuple(Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part)


@cache
def get_settings() -> Settings:
    """The process's settings, read from ``os.environ`` on first call (``get_settings.cache_clear()``
    re-reads them, e.g. in tests)."""
    return Settings.from_env(os.environ)
