"""The ingest routes' work: read a bounded body, parse and validate it off the event loop, and run
one storage call in its own write transaction (see backend.storage.ingest).

A body over ``contracts.ingest.MAX_BODY_BYTES`` is refused with 413 before it is parsed; invalid JSON
is a 422 naming the line and column; a config or environment nested deeper than MAX_CONFIG_DEPTH is a
422 naming the field; a row with a bad value is a 422 whose ``field`` is e.g. ``points.3.2``.
"""

from __future__ import annotations

import json
from typing import TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import Connection

from backend.api.deps import ApiContext
from backend.api.errors import Conflict, Invalid, NotFound, TooLarge, config_invalid
from backend.storage import ingest
from backend.storage.runs import RunRow
from contracts.ingest import MAX_BODY_BYTES, IngestAck, IngestBatch, RunFinish, RunOpen, json_depth

M = TypeVar("M", bound=BaseModel)


async def body(request: Request, model: type[M]) -> M:
    """The request body as ``model``; the bytes are capped while read, parsed in a worker thread."""
    data = bytearray()  # appended in place: a 32 MiB body in many chunks stays linear
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise TooLarge(f"an ingest request is at most {MAX_BODY_BYTES} bytes; send smaller batches")
    return await run_in_threadpool(_parse, bytes(data), model)


def _parse(data: bytes, model: type[M]) -> M:
    try:
        value = json.loads(data or b"{}")
    except (ValueError, RecursionError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise Invalid(["body"], f"the body is not valid JSON{where}; send a JSON object") from exc
    if not isinstance(value, dict):
        raise Invalid(["body"], "the body must be a JSON object")
    for field in ("config", "environment"):
        try:
            json_depth(value.get(field))
        except ValueError as exc:
            raise Invalid(["body", field], f"{field} is {exc}; flatten it") from exc
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise config_invalid(exc) from exc


def _ack(row: RunRow, stored: ingest.Stored | None = None) -> IngestAck:
    counts = {} if stored is None else {"points": stored.points, "pairs": stored.pairs, "texts": stored.texts}
    return IngestAck(run_id=row.id, status=row.status, stop_requested=row.stop_requested, **counts)


def open_run(ctx: ApiContext, run_id: str, message: RunOpen) -> IngestAck:
    with ctx.engine.begin() as conn:
        try:
            return _ack(ingest.open_run(conn, run_id, message))
        except ingest.NotExternal as exc:
            raise Conflict(str(exc)) from exc


def store_batch(ctx: ApiContext, run_id: str, batch: IngestBatch) -> IngestAck:
    with ctx.engine.begin() as conn:
        _external(conn, run_id)
        stored = ingest.store_batch(conn, run_id, batch)
        return _ack(_external(conn, run_id), stored)


def finish_run(ctx: ApiContext, run_id: str, message: RunFinish) -> IngestAck:
    with ctx.engine.begin() as conn:
        _external(conn, run_id)
        ingest.finish_run(conn, run_id, message)
        return _ack(_external(conn, run_id))


def _external(conn: Connection, run_id: str) -> RunRow:
    try:
        row = ingest.external_run(conn, run_id)
    except ingest.NotExternal as exc:
        raise Conflict(str(exc)) from exc
    if row is None:
        raise NotFound(f"run '{run_id}' not found; open it first with PUT /api/ingest/runs/{run_id}")
    return row
