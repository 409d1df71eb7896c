"""``accelerate launch`` with 2 processes (torchrun underneath, gloo on CPU) gives the same pair
records as 1 process on the same global batch, from one writer.

Both runs train 3 steps of β-DPO, scope batch (one calibration per optimizer step, from the no-grad
pre-pass, gathered over ranks in the engine's order), with gradient accumulation 2 over global
micro-batches of 2 pairs (2 processes × 1 against 1 × 2), offline: the spool file is what the writer
produced. The learning
rate is 0, so each step scores the same model and every record, the calibrator's EMA across steps
included, must be equal: a difference can only come from the gathering, the calibration or the
records, not from training noise. With a non-zero learning rate the runs agree exactly at step 1 and
drift apart by ~1e-3 nats from step 2 on, TRL alone too (DDP's averaged gradient is not
bit-identical to one process's; the logged grad norms differ in the 4th digit).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, free_port
from tests.integration.trl_support import spooled_pairs

pytestmark = pytest.mark.slow
FLAGS = ["--max-steps", "3", "--grad-accum", "2", "--beta-dpo", "--beta-dpo-scope", "batch", "--lr", "0",
         "--finish-timeout", "0"]  # fmt: skip


def test_two_processes_equal_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNSCOPE_")}
    example = str(REPO / "examples" / "trl_dpo.py")
    one = [sys.executable, example, "--batch-size", "2", "--spool-dir", str(tmp_path / "one"), *FLAGS]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]  # fmt: skip
    two = [*launch, example, "--batch-size", "1", "--spool-dir", str(tmp_path / "two"), *FLAGS]
    for command in (one, two):
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, done.stderr[-4000:]
    single, double = spooled_pairs(tmp_path / "one"), spooled_pairs(tmp_path / "two")
    assert len(single) == len(double) == 3 * 2 * 2  # steps × micro-batches × global micro-batch
    assert sum(not row["kept"] for row in single) > 0  # β-DPO filtered some pairs
    for step in (1, 2, 3):  # one calibration per step: one M0/σ over both micro-batches, 3 of 4 kept
        rows = [row for row in double if row["step"] == step]
        assert {row["micro_batch"] for row in rows} == {0, 1} and len(
            {(r["m0"], r["sigma"]) for r in rows}
        ) == 1
        assert sum(row["kept"] for row in rows) == 3
    for a, b in zip(single, double, strict=True):
        assert a == b
