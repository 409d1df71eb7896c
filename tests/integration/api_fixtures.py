"""Fixtures of the API tests (a pytest plugin: ``pytest_plugins = ("tests.integration.api_fixtures",)``):
an app on a real SQLite database in tmp_path, with a recording enqueuer and small limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.api import create_app
from backend.api.options import ApiOptions
from backend.queue import RecordingEnqueuer
from backend.settings import Settings
from tests.integration.api_support import BASE_URL


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    data = tmp_path / "data"
    return Settings(
        data_dir=data,
        database_url=f"sqlite:///{data / 'alignscope.db'}",
        model_roots=(tmp_path / "models",),
        dataset_roots=(tmp_path / "corpora",),
    )


@pytest.fixture
def queue() -> RecordingEnqueuer:
    return RecordingEnqueuer()


@pytest.fixture
def options() -> ApiOptions:
    return ApiOptions(max_upload_bytes=64 * 1024, max_line_bytes=1024, poll_s=0.02, heartbeat_s=0.2)


@pytest.fixture
def client(settings: Settings, queue: RecordingEnqueuer, options: ApiOptions) -> Iterator[TestClient]:
    app = create_app(settings, enqueuer=queue, options=options, frontend_dir=None)
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client
