"""Web-facing limits and policies of the API (not in ``backend.settings``, which the worker shares).

ALIGNSCOPE_ALLOWED_HOSTS     comma-separated Host names accepted besides the loopback names
                             ("*" accepts any); unset with an API token set: any Host is accepted
ALIGNSCOPE_ALLOWED_ORIGINS   comma-separated extra origins (scheme://host[:port]) allowed to POST/DELETE
ALIGNSCOPE_MAX_UPLOAD_MB     dataset upload cap in MiB (default 200)
ALIGNSCOPE_MAX_LINE_KB       JSONL line cap in KiB (default 1024)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from backend.settings import PREFIX, Settings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
MIB = 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parents[2]


class ApiOptions(BaseModel):
    """Limits (bytes, seconds) and the Host/Origin allow-lists. allowed_hosts None means "loopback
    names only", or any host when an API token protects the app."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_hosts: tuple[str, ...] | None = None
    allowed_origins: tuple[str, ...] = ()
    max_upload_bytes: int = Field(200 * MIB, ge=1)
    max_line_bytes: int = Field(MIB, ge=64)
    max_decompressed_bytes: int = Field(1024 * MIB, ge=1)
    preview_scan_rows: int = Field(10_000, ge=1)
    poll_s: float = Field(0.2, gt=0)
    heartbeat_s: float = Field(15.0, gt=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ApiOptions:
        """Options from ``environ`` (normally ``os.environ``); empty variables count as unset."""

        def read(name: str) -> str | None:
            return environ.get(PREFIX + name) or None

        hosts, origins = read("ALLOWED_HOSTS"), read("ALLOWED_ORIGINS")
        values: dict[str, object] = {
            "allowed_hosts": _split(hosts) if hosts else None,
            "allowed_origins": _split(origins) if origins else (),
        }
        if upload := read("MAX_UPLOAD_MB"):
            values["max_upload_bytes"] = int(float(upload) * MIB)
        if line := read("MAX_LINE_KB"):
            values["max_line_bytes"] = int(float(line) * 1024)
        return cls.model_validate(values)


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in value.split(",") if part.strip())


def model_roots(settings: Settings) -> tuple[Path, ...]:
    """Folders a submitted config may load models from: settings.model_roots, else <data_dir>/models."""
    return settings.model_roots or (settings.data_dir / "models",)


def dataset_roots(settings: Settings) -> tuple[Path, ...]:
    """Folders a submitted config may read datasets from: <data_dir>/datasets (where uploads go) and
    settings.dataset_roots. Nothing outside the deployment by default: the HH presets read the sample
    shipped in the package (data.source: bundled), which names no path."""
    return (settings.data_dir / "datasets", *settings.dataset_roots)
