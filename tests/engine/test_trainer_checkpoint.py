"""The trainer refuses to train a run from step 0 when the run has a recorded checkpoint that this
worker's data dir does not hold (the API and the workers must share ALIGNSCOPE_DATA_DIR)."""

from __future__ import annotations

from backend.settings import get_settings
from backend.storage import metrics, runs
from backend.storage.db import init_db
from contracts.config import RunConfig
from worker.jobs.trainer import execute


def test_a_checkpoint_this_worker_cannot_see_fails_the_run_instead_of_restarting(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNSCOPE_DATA_DIR", str(tmp_path / "worker-data"))
    get_settings.cache_clear()
    engine = init_db(f"sqlite:///{tmp_path / 'alignscope.db'}")
    try:
        config = RunConfig.model_validate({"name": "resumed", "optim": {"max_steps": 3}})
        with engine.begin() as conn:
            run_id = runs.create_run(conn, config.model_dump_json(), config.name, None, None)
            elsewhere = str(tmp_path / "api-data" / "checkpoints" / run_id)  # the API's own data dir
            assert runs.set_checkpoint(conn, run_id, 1, elsewhere, status="queued")
            assert runs.claim_run(conn, run_id, 1)
        summary = execute(engine, run_id, 1)
        with engine.connect() as conn:
            row = runs.get_run(conn, run_id)
            assert metrics.keys(conn, run_id) == []  # nothing trained from step 0
        assert (summary.status, row.status) == ("failed", "failed")
        assert "CheckpointNotShared" in row.error and "ALIGNSCOPE_DATA_DIR" in row.error
        assert elsewhere in row.error
    finally:
        engine.dispose()
        get_settings.cache_clear()
