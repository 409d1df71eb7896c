"""Web-facing limits and policies of the API (not in ``backend.settings``, which the worker shares).

ALIGNSCOPE_ALLOWED_HOSTS     comma-separated Host names accepted besides the loopback names
                             ("*" accepts any); unset with an API token set: any Host is accepted
ALIGNSCOPE_ALLOWED_ORIGINS   comma-separated extra origins (scheme://host[:port]) allowed to POST/DELETE
ALIGNSCOPE_MAX_UPLOAD_MB     dataset upload cap in MiB (default 200)
ALIGNSCOPE_MAX_LINE_KB       JSONL line (and parquet row) cap in KiB (default 1024)
ALIGNSCOPE_MAX_UPLOAD_ROWS   rows of one dataset upload (default 1,000,000)
ALIGNSCOPE_MAX_BODY_KB       cap of any other request body (JSON, YAML) in KiB (default 256)
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from backend.api.uploads import Caps
from backend.settings import PREFIX, REPO_ROOT, dataset_roots, model_roots
from contracts.pair_readers import ReadBudget

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
MIB = 1024 * 1024


class ApiOptions(BaseModel):
    """Limits (bytes, seconds) and the Host/Origin allow-lists. allowed_hosts None means "loopback
    names only", or any host when an API token protects the app."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_hosts: tuple[str, ...] | None = None
    allowed_origins: tuple[str, ...] = ()
    max_upload_bytes: int = Field(200 * MIB, ge=1)
    max_line_bytes: int = Field(MIB, ge=64)
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    max_json_depth: int = Field(32, ge=4, le=200)
    max_decompressed_bytes: int = Field(512 * MIB, ge=1)
    max_json_array_bytes: int = Field(32 * MIB, ge=1)
    max_upload_rows: int = Field(1_000_000, ge=1)
    preview_scan_rows: int = Field(10_000, ge=1)
    poll_s: float = Field(0.2, gt=0)
    heartbeat_s: float = Field(15.0, gt=0)

    def upload_caps(self) -> Caps:
        """What the upload stream may carry (backend.api.uploads)."""
        return Caps(
            self.max_upload_bytes, self.max_line_bytes, self.max_decompressed_bytes, self.max_json_array_bytes
        )

    def read_budget(self) -> ReadBudget:
        """What validating a stored dataset may read (contracts.pair_readers)."""
        return ReadBudget(
            max_rows=self.max_upload_rows,
            max_record_bytes=self.max_line_bytes,
            max_total_bytes=self.max_decompressed_bytes,
            max_json_bytes=self.max_json_array_bytes,
        )

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
        if rows := read("MAX_UPLOAD_ROWS"):
            values["max_upload_rows"] = int(rows)
        if body := read("MAX_BODY_KB"):
            values["max_body_bytes"] = int(float(body) * 1024)
        return cls.model_validate(values)


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in value.split(",") if part.strip())


__all__ = ["REPO_ROOT", "ApiOptions", "dataset_roots", "model_roots"]
