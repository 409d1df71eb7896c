"""Whether a run can be placed and resumed, said before anyone clicks: a submitted run that no live
worker can take is refused (``check_placeable``: ``device: cuda`` with live workers and none with
CUDA), a queued run says what it waits for, and Resume is offered only where it can work — a
stopped or failed run with a checkpoint, not resumed already (docs/decisions/0082-workers-and-placement.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Connection

from backend.api.deps import ApiContext
from backend.api.errors import Invalid
from backend.api.models import RunOut
from backend.storage import workers
from backend.storage.runs import RunRow
from backend.storage.tables import runs as runs_table
from contracts.config import RunConfig

CHECKPOINT_FILES = ("model.safetensors", "state.pt")
SHARDED_MARK = "sharded/.metadata"  # an FSDP checkpoint (torch.distributed.checkpoint) has no weights file
RESUMABLE = ("stopped", "failed")


def check_placeable(conn: Connection, configs: Sequence[RunConfig]) -> None:
    """Invalid naming ``device`` when no live worker can take one of ``configs``."""
    for config in configs:
        if problem := workers.placement_problem(conn, config.device):
            raise Invalid(("body", "device"), problem, "no_worker")


def resume_blocked(conn: Connection, checkpoints_dir: Path, run: RunRow) -> str | None:
    """Why Resume cannot work for ``run`` (the message names what to do instead), or None."""
    return _blocked(run, checkpoints_dir, _resumed_as(conn, [run]).get(run.id))


def annotated(conn: Connection, checkpoints_dir: Path, rows: Sequence[RunRow]) -> list[RunOut]:
    """RunOut of each row with ``resume_blocked``/``resumable`` and, when queued, ``waiting_for``."""
    resumed = _resumed_as(conn, [row for row in rows if row.status in RESUMABLE])
    queued = [row for row in rows if row.status == "queued"]
    waits = {row.id: workers.waiting_for(conn, _device(row)) for row in queued}
    out = []
    for row in rows:
        blocked = _blocked(row, checkpoints_dir, resumed.get(row.id))
        update = {"resumable": blocked is None, "resume_blocked": blocked, "waiting_for": waits.get(row.id)}
        out.append(RunOut.of(row).model_copy(update=update))
    return out


def outs(ctx: ApiContext, rows: Sequence[RunRow]) -> list[RunOut]:
    """``annotated`` in a read transaction of its own (for the write routes' responses)."""
    with ctx.reads.begin() as conn:
        return annotated(conn, ctx.checkpoints_dir, rows)


def _blocked(run: RunRow, checkpoints_dir: Path, resumed_as: str | None) -> str | None:
    if run.source is not None:
        return f"trained by an external trainer ({run.source}): AlignScope has no checkpoint of it to resume"
    if run.status not in RESUMABLE:
        return f"run is {run.status}; only a stopped or failed run can be resumed"
    if resumed_as is not None:
        return f"already resumed as run {resumed_as}; open that run (and resume it if it stopped)"
    folder = Path(run.checkpoint_path or checkpoints_dir / run.id)
    weights = (folder / CHECKPOINT_FILES[0]).is_file() or (folder / SHARDED_MARK).is_file()
    if not (weights and (folder / CHECKPOINT_FILES[1]).is_file()):
        return (
            "no checkpoint to resume from (it stopped before its first one; set checkpoint_every); clone it"
        )
    return None


def _resumed_as(conn: Connection, rows: Sequence[RunRow]) -> dict[str, str]:
    """parent id → the first child that resumed it (a child with ``resume_step`` set; a clone has
    none)."""
    if not rows:
        return {}
    r = runs_table.c
    query = select(r.id, r.parent_id).where(
        r.parent_id.in_([row.id for row in rows]), r.resume_step.is_not(None)
    )
    found: dict[str, str] = {}
    for child_id, parent_id in conn.execute(query.order_by(r.created_at)):
        found.setdefault(parent_id, child_id)
    return found


def _device(row: RunRow) -> str:
    try:
        return RunConfig.model_validate_json(row.config).device
    except ValueError:
        return "auto"
