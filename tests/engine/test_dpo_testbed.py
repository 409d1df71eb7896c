"""The DPO testbed (issue 20 item 1, presets/experiments/dpo-vs-sft.yaml, docs/EXPERIMENTS.md §7):
`alignscope experiment dpo-vs-sft --quick` on the CPU, as a user runs it — DPO, DPO + filtering and
β-DPO each beat the SFT model they start from at T = 0 and T = 1, with a 95 % interval that excludes 0.
Without this, no comparison of DPO variants in the experiments means anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_dpo_beats_its_sft_start_on_the_testbed(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ALIGNSCOPE_DATA_DIR": str(tmp_path / "store"),
        "ALIGNSCOPE_CACHE_DIR": str(tmp_path / "c"),
    }
    env.pop("ALIGNSCOPE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", "experiment", "dpo-vs-sft", "--quick"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    folder = next((tmp_path / "store" / "experiments").glob("dpo-vs-sft-quick-*"))
    summary = json.loads((folder / "summary.json").read_text())
    assert all(run["status"] == "succeeded" for run in summary["runs"])
    against_sft = {(v["method"], v["column"]): v for v in summary["verdicts"]}
    assert set(against_sft) == {(m, t) for m in ("DPO", "DPO + filtering", "β-DPO") for t in ("T=0", "T=1")}
    for verdict in against_sft.values():
        _, low, _ = verdict["difference"]
        assert low > 0, verdict["text"]  # the interval of (method − SFT) excludes 0 on the good side
        assert verdict["verdict"] == "agrees"
