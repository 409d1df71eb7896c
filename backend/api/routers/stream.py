"""Server-Sent Events: one run's stream and the stream over all runs (see backend.api.live)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from backend.api import live
from backend.api.deps import ApiContext, Ctx, find_run
from backend.api.errors import BadRequest
from backend.api.models import ErrorOut

router = APIRouter(prefix="/api", tags=["stream"])
SSE = {200: {"content": {"text/event-stream": {}}, "description": "an event stream"}}
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_SEQ = 2**62
After = Annotated[
    int | None, Query(ge=0, le=MAX_SEQ, description="resume after this seq (metrics' last_seq)")
]
IdleEnd = Annotated[float | None, Query(gt=0, le=3600, description="end after this many idle seconds")]
NOT_FOUND = {404: {"model": ErrorOut, "description": "no such run"}}
BAD_ID = {400: {"model": ErrorOut, "description": "a Last-Event-ID this stream did not send"}}
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)]


def _cursor(after: int | None, last_event_id: str | None) -> int | None:
    """A reconnect's Last-Event-ID wins over ?after=; neither means "from now on". An id that is not
    a seq this stream sent (ASCII digits, at most 2^62) is a 400, never silently ignored."""
    if last_event_id is None or not last_event_id.strip():
        return after
    text = last_event_id.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_SEQ:
        raise BadRequest("Last-Event-ID must be the id of an event this stream sent (digits, at most 2^62)")
    return int(text)


def _response(ctx: ApiContext, request: Request, run_id: str | None, after: int | None, idle: float | None):
    body = live.events(ctx, request, run_id, after, idle)
    return StreamingResponse(body, media_type="text/event-stream", headers=HEADERS)


@router.get(
    "/runs/{run_id}/stream", response_class=StreamingResponse, responses={**SSE, **NOT_FOUND, **BAD_ID}
)
async def stream_run(
    run_id: str,
    request: Request,
    ctx: Ctx,
    after: After = None,
    until_idle_s: IdleEnd = None,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """The run's new points, pair steps and status changes; ``id:`` is the metric seq."""
    await asyncio.to_thread(_check_run, ctx, run_id)
    return _response(ctx, request, run_id, _cursor(after, last_event_id), until_idle_s)


@router.get("/stream", response_class=StreamingResponse, responses={**SSE, **BAD_ID})
async def stream_all(
    request: Request,
    ctx: Ctx,
    after: After = None,
    until_idle_s: IdleEnd = None,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """Every run's new points, pair steps, status changes and deletions."""
    return _response(ctx, request, None, _cursor(after, last_event_id), until_idle_s)


def _check_run(ctx: ApiContext, run_id: str) -> None:
    with ctx.reads.begin() as conn:
        find_run(conn, run_id)
