"""The application factory. ``create_app()`` reads the settings from the environment; tests pass
their own settings, options and a RecordingEnqueuer.

Static hook: when ``frontend_dir`` (default: the repository's ``frontend/``) exists it is mounted at
``/`` with ``StaticFiles(html=True)`` after every API route, so ``/`` serves its index.html.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from backend.api import api_docs, errors
from backend.api.body_budget import BodyBudget
from backend.api.deps import ApiContext
from backend.api.options import REPO_ROOT, ApiOptions
from backend.api.routers import (
    compare,
    datasets,
    experiments,
    ingest,
    login,
    logs,
    metrics,
    pairs,
    presets,
    runs,
    stream,
    workers,
)
from backend.api.security import SecurityMiddleware
from backend.queue import Enqueuer, default_enqueuer
from backend.settings import Settings, get_settings
from backend.storage import sessions
from backend.storage.db import init_db, make_engine, reader

FRONTEND_DIR = REPO_ROOT / "frontend"
ROUTERS = (
    runs,
    logs,
    metrics,
    pairs,
    compare,
    stream,
    datasets,
    presets,
    experiments,
    login,
    ingest,
    workers,
)


def session_csrf(engine: Engine, cookie: str) -> str | None:
    """The CSRF token of the live session named by ``cookie`` (None when it is not live)."""
    with reader(engine).begin() as conn:
        return sessions.csrf_of(conn, cookie)


def create_app(
    settings: Settings | None = None,
    *,
    enqueuer: Enqueuer | None = None,
    options: ApiOptions | None = None,
    migrate: bool = True,
    frontend_dir: Path | None = FRONTEND_DIR,
) -> FastAPI:
    """The AlignScope API. ``migrate`` upgrades the database schema first; ``enqueuer`` defaults to
    Celery on ``settings.broker_url`` (a RecordingEnqueuer when none is set)."""
    settings = settings or get_settings()
    engine = init_db(settings.database_url) if migrate else make_engine(settings.database_url)
    context = ApiContext(
        settings=settings,
        options=options or ApiOptions.from_env(os.environ),
        engine=engine,
        enqueuer=enqueuer or default_enqueuer(settings.broker_url),
        allowed=settings.allowed(),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="AlignScope", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.context = context
    errors.install(app)
    api_docs.install(app)
    for module in ROUTERS:
        app.include_router(module.router)
    caps = context.options
    app.add_middleware(BodyBudget, max_body_bytes=caps.max_body_bytes, max_json_depth=caps.max_json_depth)
    lookup = partial(session_csrf, engine)
    app.add_middleware(
        SecurityMiddleware, token=settings.api_token, options=caps, sessions=lookup
    )  # outermost
    if frontend_dir is not None and frontend_dir.is_dir():
        app.mount("/", StaticFiles(directory=frontend_dir, html=True), name="frontend")
    return app
