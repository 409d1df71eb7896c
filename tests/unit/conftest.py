"""Fixtures of the storage unit tests: a migrated SQLite store and a claimed run in it."""

import pytest

from backend.storage import runs
from backend.storage.db import init_db


@pytest.fixture
def engine(tmp_path):
    """A fresh SQLite store at head, disposed after the test."""
    engine = init_db(f"sqlite:///{tmp_path / 'alignscope.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def run_id(engine):
    """A run claimed at attempt 1 (status running), so fenced writes are accepted."""
    with engine.begin() as conn:
        run_id = runs.create_run(conn, "{}", "run", None, None)
        runs.claim_run(conn, run_id, 1)
    return run_id
