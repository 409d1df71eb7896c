"""A failed run's error is a message people can act on (issue 19 item 4 web side, issue 16 item 10):
the real trainer process records ``Type: message`` — no traceback, no frames naming server paths —
and writes the traceback to its own output (the attempt's log); a crashed trainer's error names the
exception line from its log's tail, not the tail itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from backend.storage import runs
from backend.storage.db import init_db
from contracts.config import RunConfig
from worker.jobs.children import last_error_line
from worker.jobs.trainer import error_message

REPO = Path(__file__).resolve().parents[2]
pytest_plugins = ("tests.integration.api_fixtures",)


def test_a_failing_trainer_records_the_message_and_logs_the_traceback(tmp_path: Path) -> None:
    empty_model = tmp_path / "models" / "empty"
    empty_model.mkdir(parents=True)
    config = RunConfig.model_validate(
        {
            "name": "broken",
            "model": {"source": "pretrained", "path": str(empty_model)},
            "optim": {"max_steps": 2},
        }
    )
    engine = init_db(f"sqlite:///{tmp_path / 'alignscope.db'}")
    with engine.begin() as conn:
        run_id = runs.create_run(conn, config.model_dump_json(), "broken", None, None)
        assert runs.claim_run(conn, run_id, 1)
    env = {**os.environ, "ALIGNSCOPE_DATA_DIR": str(tmp_path)}
    env.pop("ALIGNSCOPE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "worker.jobs.trainer", run_id, "1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    with engine.connect() as conn:
        row = runs.get_run(conn, run_id)
    engine.dispose()
    assert row is not None and row.status == "failed", (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in row.error and 'File "' not in row.error and "\n" not in row.error.strip()
    assert row.error.split(":")[0].isidentifier()  # "OSError: …": the exception's type, then its message
    assert "Traceback (most recent call last)" in done.stderr  # the operator's copy, in the attempt's log
    assert row.error.split(": ", 1)[1][:40] in done.stderr


def test_error_message_is_the_type_and_message_only() -> None:
    try:
        json.loads("{")
    except ValueError as exc:
        assert (
            error_message(exc)
            == "JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
        )
    assert (
        error_message(RuntimeError("x" * 5000)).endswith("…")
        and len(error_message(RuntimeError("x" * 5000))) == 2000
    )


def test_last_error_line_picks_the_exception_line_of_a_log_tail() -> None:
    tail = (
        "step 3/5\nTraceback (most recent call last):\n"
        '  File "/srv/alignscope/worker/engine/loop.py", line 3, in step\n    x()\n'
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    )
    assert last_error_line(tail) == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert (
        last_error_line("usage: alignscope experiment …\nunknown experiment 'x'\n")
        == "unknown experiment 'x'"
    )
    assert last_error_line("") is None


def test_the_log_route_serves_an_attempts_log_and_404s_without_one(client, settings) -> None:
    from tests.integration.api_support import new_run

    run = new_run(client)
    missing = client.get(f"/api/runs/{run['id']}/log")
    assert missing.status_code == 404 and "ALIGNSCOPE_DATA_DIR" in missing.json()["detail"]
    log = settings.data_dir / "logs" / run["id"] / "attempt-1.log"
    log.parent.mkdir(parents=True)
    log.write_text("Traceback (most recent call last):\nValueError: boom\n")
    reply = client.get(f"/api/runs/{run['id']}/log")
    assert reply.status_code == 200 and reply.text.endswith("ValueError: boom\n")
    assert reply.headers["content-type"].startswith("text/plain")
