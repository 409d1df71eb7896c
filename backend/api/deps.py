"""What handlers receive: the app's context (engine, settings, options, enqueuer, what runs may reach), a read
connection, and an existing run (404 otherwise).

Reads go through ``reader(engine)`` (SQLite: DEFERRED transactions that never block the writer);
writes through ``engine.begin()`` (SQLite: BEGIN IMMEDIATE).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from backend.api.errors import NotFound
from backend.api.login_throttle import LoginThrottle
from backend.api.options import ApiOptions
from backend.queue import Enqueuer
from backend.settings import Settings
from backend.storage import runs
from backend.storage.db import reader
from backend.storage.runs import RunRow
from contracts.deployment import Allowed


@dataclass(frozen=True)
class ApiContext:
    """Everything the routes share; stored on ``app.state.context`` by ``create_app``."""

    settings: Settings
    options: ApiOptions
    engine: Engine
    enqueuer: Enqueuer
    allowed: Allowed
    throttle: LoginThrottle = field(default_factory=LoginThrottle)

    @property
    def reads(self) -> Engine:
        """The engine for read-only transactions."""
        return reader(self.engine)

    @property
    def model_roots(self) -> tuple[Path, ...]:
        return self.allowed.model_roots

    @property
    def dataset_roots(self) -> tuple[Path, ...]:
        return self.allowed.dataset_roots

    @property
    def datasets_dir(self) -> Path:
        return self.settings.data_dir / "datasets"

    @property
    def checkpoints_dir(self) -> Path:
        return self.settings.data_dir / "checkpoints"


def context(request: Request) -> ApiContext:
    return request.app.state.context


Ctx = Annotated[ApiContext, Depends(context)]


def read_connection(ctx: Ctx) -> Iterator[Connection]:
    """One read transaction for the whole request (one consistent snapshot on SQLite)."""
    with ctx.reads.begin() as conn:
        yield conn


ReadConn = Annotated[Connection, Depends(read_connection)]


def find_run(conn: Connection, run_id: str) -> RunRow:
    """The run, or NotFound with a message naming the id."""
    row = runs.get_run(conn, run_id) if len(run_id) <= 64 else None
    if row is None:
        raise NotFound(f"run '{run_id[:64]}' not found")
    return row


def existing_run(run_id: str, conn: ReadConn) -> RunRow:
    return find_run(conn, run_id)


Run = Annotated[RunRow, Depends(existing_run)]
