"""Where a run attempt's trainer output is written: the worker writes it, the API serves it to the
operator (GET /api/runs/{id}/log) — both on the deployment's shared data dir."""

from __future__ import annotations

from pathlib import Path


def attempt_log_path(data_dir: Path, run_id: str, attempt: int) -> Path:
    """The log of one attempt of a run: the trainer's stdout and stderr (tracebacks included)."""
    return data_dir / "logs" / run_id / f"attempt-{attempt}.log"
