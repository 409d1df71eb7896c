"""The worker re-checks a run's config against ITS deployment settings before it reads anything
(issue 16.1/16.2/16.8): a row that never passed the API (written straight to the store, or whose
settings changed since) fails in a real trainer process, the error naming the config field and never
whether a path outside the allowed folders exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backend.storage import runs
from backend.storage.db import init_db
from backend.storage.tables import metric_points
from tests.integration.conftest import REPO, run_row, tiny_config


def _trainer(tmp_path: Path, config: dict, env: dict[str, str]) -> runs.RunRow:
    """Insert ``config`` as a claimed run, run ``python -m worker.jobs.trainer`` on it, return the row."""
    url = f"sqlite:///{tmp_path / 'alignscope.db'}"
    engine = init_db(url)
    with engine.begin() as conn:
        run_id = runs.create_run(conn, json.dumps(config), "run", None, None)
        assert runs.claim_run(conn, run_id, 1)
    environ = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ALIGNSCOPE_DATABASE_URL": url,
        "ALIGNSCOPE_DATA_DIR": str(tmp_path / "data"),
        "ALIGNSCOPE_DATASET_ROOTS": str(tmp_path / "corpora"),
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-m", "worker.jobs.trainer", run_id, "1"],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    row = run_row(engine, run_id)
    engine.dispose()
    return row


@pytest.mark.parametrize("exists", [True, False])
def test_an_eval_path_outside_the_roots_fails_the_run_the_same_whether_it_exists(tmp_path, exists):
    secret = tmp_path / "secret.jsonl"
    if exists:
        secret.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    config = tiny_config()
    config["data"]["eval_path"] = str(secret)  # source stays "constructed": the hole of issue 16.2
    row = _trainer(tmp_path, config, {})
    assert row.status == "failed"
    assert "ConfigRefused: data.eval_path:" in row.error
    assert "outside the folders this deployment allows" in row.error
    assert "exist" not in row.error.lower() and "no such file" not in row.error.lower()
    assert run_row_points(tmp_path) == 0  # nothing was trained


def test_an_endpoint_this_worker_does_not_know_and_a_process_cap_fail_the_run(tmp_path):
    config = tiny_config("evaluation.at_end=true")
    config["evaluation"]["judge"] = {"kind": "openai", "endpoint": "lab", "model": "m"}
    config["num_processes"], config["optim"]["batch_size"], config["optim"]["micro_batch_size"] = 2, 8, 8
    row = _trainer(tmp_path, config, {"ALIGNSCOPE_MAX_PROCESSES": "1"})
    assert row.status == "failed"
    assert "evaluation.judge.endpoint: unknown judge endpoint 'lab'" in row.error
    assert "num_processes: 2 is above this deployment's cap of 1" in row.error


def run_row_points(tmp_path: Path) -> int:
    engine = init_db(f"sqlite:///{tmp_path / 'alignscope.db'}")
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(metric_points)).scalar_one()
    engine.dispose()
    return count
