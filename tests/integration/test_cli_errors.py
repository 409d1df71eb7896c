"""The command line's errors are messages, not tracebacks: a UserError or OSError prints the
message (field or file as the user wrote it, and the fix) and exits 2; nothing is recorded."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALIGNSCOPE_DATA_DIR": str(tmp_path / "data")}
    env.pop("ALIGNSCOPE_DEBUG", None)
    command = [sys.executable, "-m", "worker.cli.main", *args]
    return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def _runs(tmp_path: Path) -> list[str]:
    database = tmp_path / "data" / "alignscope.db"
    if not database.exists():
        return []
    with sqlite3.connect(database) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM runs")]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("export", "abc", "--metrics", "m.xlsx"), "use .csv or .parquet"),
        (("export", "abc", "--pairs", "no/such/folder/p.csv"), "is not a folder: create it first"),
        (
            ("train", "tiny-dpo", "--set", "model.source=pretrained", "--set", "model.path=/no/such/model"),
            "model.path: '/no/such/model' does not exist",
        ),
        (
            ("train", "tiny-dpo", "--set", "data.source=file", "--set", "data.path=missing.jsonl"),
            "data.path: 'missing.jsonl' does not exist",
        ),
        (("train", "tiny-dpo", "--set", "optim.lrr=0.1"), "did you mean 'lr'?"),
        (("train", "no-such.yaml"), "config file 'no-such.yaml' not found"),
        (("experiment", "no-such-experiment"), "unknown experiment 'no-such-experiment'"),
    ],
)
def test_user_errors_print_a_message_and_no_traceback(tmp_path, args, says):
    done = _cli(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and says in done.stderr
    assert _runs(tmp_path) == []  # nothing recorded
