"""schemathesis over the OpenAPI document: for generated requests to every operation, no 5xx and every
documented response matches its schema. The SSE streams never end by design, so their cases are
given ``until_idle_s`` (the stream ends after that idle time) on top of whatever else was generated
(ids, ``after`` cursors, Last-Event-ID headers).

The app is built when the module is collected (schemathesis' ``from_fixture`` does not work with
pytest 9), on a SQLite database in a temporary folder that the module fixture removes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error, response_schema_conformance

from backend.api import create_app
from backend.api.options import ApiOptions
from backend.queue import RecordingEnqueuer
from backend.settings import Settings

FOLDER = Path(tempfile.mkdtemp(prefix="alignscope-schemathesis-"))
APP = create_app(
    Settings(data_dir=FOLDER, database_url=f"sqlite:///{FOLDER / 'alignscope.db'}"),
    enqueuer=RecordingEnqueuer(),
    options=ApiOptions(allowed_hosts=("testserver",), max_upload_bytes=64 * 1024, max_line_bytes=1024),
    frontend_dir=None,
)
BASE = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema = BASE.exclude(path_regex="stream$")
streams = BASE.include(path_regex="stream$")


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    APP.state.context.engine.dispose()
    shutil.rmtree(FOLDER, ignore_errors=True)


@schema.parametrize()
@hypothesis.settings(max_examples=12, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_no_server_error_and_responses_match_the_schema(case):
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])


@streams.parametrize()
@hypothesis.settings(max_examples=15, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_streams_give_no_server_error(case):
    case.query = {**(case.query or {}), "until_idle_s": 0.05}
    case.call_and_validate(checks=[not_a_server_error])
