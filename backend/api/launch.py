"""Creating, resuming, cloning, stopping and deleting runs: the write side of the runs routes.

Every new run is checked (what it reaches against the deployment's allowances, whether its data
file can fill one micro-batch), inserted as ``queued`` in one
transaction, and only then announced to the broker (a worker can never claim an uncommitted row).
Resume copies the parent's checkpoint folder into ``<data_dir>/checkpoints/<new id>/`` inside that
transaction, so the trainer of the new run starts from it.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backend.api import placement
from backend.api.data_rows import check_enough_rows
from backend.api.deps import ApiContext, find_run
from backend.api.errors import Conflict, Invalid, config_invalid
from backend.api.paths import checked
from backend.api.placement import CHECKPOINT_FILES
from backend.config_files import apply_overrides
from backend.storage import runs
from backend.storage.runs import RunRow
from contracts.config import RunConfig

EXTERNAL = (
    "was trained by an external trainer ({source}) that streamed its rows in: AlignScope has neither its "
    "checkpoint nor a config its engine can run, so it cannot {action} it; rerun the trainer's script instead"
)
DOTTED_KEY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
ABLATIONS: dict[str, dict[str, bool]] = {
    "dpo": {"enabled": False},
    "dynamic-beta": {"enabled": True, "dynamic_beta": True, "filtering": False},
    "filtering": {"enabled": True, "dynamic_beta": False, "filtering": True},
    "beta-dpo": {"enabled": True, "dynamic_beta": True, "filtering": True},
}


def launch(
    ctx: ApiContext,
    configs: list[RunConfig],
    parent_id: str | None = None,
    checkpoint: Path | None = None,
    resume_step: int | None = None,
) -> list[RunRow]:
    """Insert queued runs for ``configs`` (one transaction), then enqueue them. With ``checkpoint``,
    that folder is copied as the (single) new run's checkpoint and recorded as its ``checkpoint_path``,
    so that a worker which cannot see it fails the run instead of training it from step 0;
    ``resume_step`` marks the new run as continuing ``parent_id`` after that step."""
    configs = [checked(c, ctx.allowed) for c in configs]
    for config in configs:
        check_enough_rows(config, ctx.options.read_budget(), ctx.options.preview_scan_rows)
    with ctx.engine.begin() as conn:
        placement.check_placeable(conn, configs)
        ids = [
            runs.create_run(conn, c.model_dump_json(), c.name, c.preset, c.group, parent_id, resume_step)
            for c in configs
        ]
        if checkpoint is not None:
            target = ctx.checkpoints_dir / ids[0]
            _copy_checkpoint(checkpoint, target)
            runs.set_checkpoint(conn, ids[0], 1, str(target), status="queued")
        rows = [find_run(conn, run_id) for run_id in ids]
    for row, config in zip(rows, configs, strict=True):
        ctx.enqueuer.enqueue(row.id, row.attempt, config)
    return rows


def _copy_checkpoint(source: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        shutil.copytree(source, partial, symlinks=False)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def resume(ctx: ApiContext, parent: RunRow) -> RunRow:
    """A new queued run with the parent's config, continuing from the parent's checkpoint."""
    _native(parent, "resume")
    with ctx.reads.begin() as conn:
        blocked = placement.resume_blocked(conn, ctx.checkpoints_dir, parent)
    if blocked is not None:
        raise Conflict(f"run {parent.id} cannot be resumed: {blocked}")
    folder = Path(parent.checkpoint_path or ctx.checkpoints_dir / parent.id)
    step = checkpoint_step(folder / CHECKPOINT_FILES[0])
    resume_step = step if step is not None else parent.step or 0
    return launch(ctx, [_stored_config(parent.config)], parent.id, folder, resume_step)[0]


def checkpoint_step(model_file: Path) -> int | None:
    """The optimizer step a checkpoint was written at, from its safetensors header's metadata
    (``{"step": "N"}``, written by worker.engine.checkpoint; read without torch); None when absent."""
    try:
        with model_file.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size)) if 0 < size <= 100_000_000 else {}
        return int(header.get("__metadata__", {})["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def clone(ctx: ApiContext, parent: RunRow, overrides: Mapping[str, Any]) -> RunRow:
    """A new queued run with the parent's config and ``overrides`` (dotted key → JSON value)."""
    _native(parent, "clone")
    for key in overrides:
        if not DOTTED_KEY.match(key):
            raise Invalid(("body", "overrides", key), "expected a dotted config key like 'optim.lr'")
    items = [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    data = apply_overrides(json.loads(parent.config), items)
    return launch(ctx, [_validated(data)], parent.id)[0]


def _native(run: RunRow, action: str) -> None:
    """Conflict for an external run (no engine config, no checkpoint here)."""
    if run.source is not None:
        raise Conflict(f"run {run.id} " + EXTERNAL.format(source=run.source, action=action))


def ablations(ctx: ApiContext, group: str, base: RunConfig) -> list[RunRow]:
    """The four β-DPO ablations of ``base`` (DPO, +dynamic β, +filtering, β-DPO) in ``group``."""
    data = base.model_dump(mode="json")
    configs = []
    for suffix, switches in ABLATIONS.items():
        variant = {**data, "group": group, "name": f"{base.name[:180]}-{suffix}"}
        variant["beta_dpo"] = {**data["beta_dpo"], **switches}
        configs.append(_validated(variant))
    return launch(ctx, configs)


def stop(ctx: ApiContext, run_id: str) -> RunRow:
    """Queued → stopped at once; running → stop_requested (the trainer checkpoints and stops)."""
    with ctx.engine.begin() as conn:
        find_run(conn, run_id)
        runs.request_stop(conn, run_id)
        return find_run(conn, run_id)


def delete(ctx: ApiContext, run_id: str) -> None:
    """Delete a run that is not running, its rows and its checkpoint folder."""
    with ctx.engine.begin() as conn:
        if find_run(conn, run_id).status == "running":
            raise Conflict(f"run {run_id} is running; stop it first")
        runs.delete_run(conn, run_id)
    shutil.rmtree(ctx.checkpoints_dir / run_id, ignore_errors=True)


def _validated(data: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise config_invalid(exc) from exc


def _stored_config(text: str) -> RunConfig:
    try:
        return RunConfig.model_validate_json(text)
    except ValidationError as exc:
        raise config_invalid(exc) from exc
