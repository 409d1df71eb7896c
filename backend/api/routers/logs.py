"""The operator's view of a failed run: the end of the trainer's log of an attempt (its tracebacks),
which the run page links to instead of showing them (a run's ``error`` is only the message)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from backend.api.deps import Ctx, Run
from backend.api.errors import NotFound
from backend.api.models import ErrorOut
from contracts.logs import attempt_log_path

router = APIRouter(prefix="/api", tags=["runs"])
TAIL_BYTES = 256 * 1024


@router.get(
    "/runs/{run_id}/log",
    response_class=PlainTextResponse,
    responses={404: {"model": ErrorOut, "description": "no such run, or no log of it on this server"}},
)
def run_log(run: Run, ctx: Ctx, attempt: Annotated[int | None, Query(ge=1, le=1000)] = None) -> str:
    """The last 256 KiB of the trainer's output for ``attempt`` (default: the run's latest)."""
    number = attempt or run.attempt
    path = attempt_log_path(ctx.settings.data_dir, run.id, number)
    if not path.is_file():
        raise NotFound(
            f"no log of run {run.id} attempt {number} under this server's data dir: the worker that ran it "
            "writes it to its own data dir (share ALIGNSCOPE_DATA_DIR between the API and the workers)"
        )
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - TAIL_BYTES))
        return handle.read().decode("utf-8", errors="replace")
