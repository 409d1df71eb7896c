"""Deployment settings, read from the environment once through the cached ``get_settings()``.

ALIGNSCOPE_DATA_DIR       where the embedded database and artifacts live (default ./.alignscope)
ALIGNSCOPE_DATABASE_URL   SQLAlchemy URL (default sqlite:///<data_dir>/alignscope.db)
ALIGNSCOPE_BROKER_URL     Celery broker; unset means the embedded broker (chosen by the service)
ALIGNSCOPE_API_TOKEN      bearer token required by the API; unset means no authentication
ALIGNSCOPE_MODEL_ROOTS    os.pathsep-separated folders a launch form may read models from
ALIGNSCOPE_DATASET_ROOTS  os.pathsep-separated folders a launch form may read datasets from

An empty variable counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

PREFIX = "ALIGNSCOPE_"


class Settings(BaseModel):
    """Immutable deployment settings; paths are absolute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path
    database_url: str
    broker_url: str | None = None
    api_token: str | None = None
    model_roots: tuple[Path, ...] = ()
    dataset_roots: tuple[Path, ...] = ()

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
        )


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
