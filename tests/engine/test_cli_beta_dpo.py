"""`alignscope train tiny-beta-dpo` end to end (a real subprocess), then the exported per-pair rows
must satisfy the β-DPO relations of SCIENCE.md Product decisions 1–2 exactly as the run used them."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
BETA0, ALPHA, RHO, MOMENTUM, SIGMA_FLOOR = 0.1, 0.6, 0.8, 0.9, 1e-3


def cli(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALIGNSCOPE_DATA_DIR": str(data_dir)}
    env.pop("ALIGNSCOPE_DATABASE_URL", None)
    command = [sys.executable, "-m", "worker.cli.main", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    data_dir = tmp_path_factory.mktemp("store")
    started = time.perf_counter()
    train = cli(["train", "tiny-beta-dpo"], data_dir)
    seconds = time.perf_counter() - started
    assert train.returncode == 0, train.stderr[-2000:]
    run_id = train.stdout.strip().splitlines()[-1]
    assert len(run_id) == 32
    listing = cli(["runs"], data_dir)
    assert run_id in listing.stdout and "succeeded" in listing.stdout and "60/60" in listing.stdout
    out = cli(
        ["export", run_id, "--metrics", str(data_dir / "m.csv"), "--pairs", str(data_dir / "p.parquet")],
        data_dir,
    )
    assert out.returncode == 0, out.stderr
    return pd.read_csv(data_dir / "m.csv"), pd.read_parquet(data_dir / "p.parquet"), seconds


def test_tiny_beta_dpo_runs_from_the_cli_in_under_a_minute(exported: tuple) -> None:
    metrics, pairs, seconds = exported
    assert seconds < 60
    assert sorted(metrics[metrics.key == "train/loss"].step) == list(range(1, 61))
    assert len(pairs) == 60 * 16  # every pair of every micro-batch of every step


def test_exported_pairs_satisfy_the_beta_dpo_relations(exported: tuple) -> None:
    _, pairs, _ = exported
    m0_prev = sigma_prev = 0.0
    for (_, _), group in pairs.groupby(["step", "micro_batch"], sort=True):
        d = group.discrepancy
        u = (group.policy_chosen_logp - group.reference_chosen_logp) - (
            group.policy_rejected_logp - group.reference_rejected_logp
        )
        assert d.to_numpy() == pytest.approx(u.to_numpy(), abs=2e-4)  # M_i = u_i (code units)
        m0 = MOMENTUM * m0_prev + (1 - MOMENTUM) * d.mean()  # EMA from ALL pairs before filtering
        sigma = MOMENTUM * sigma_prev + (1 - MOMENTUM) * d.std(ddof=1)  # unbiased std
        assert group.m0.iloc[0] == pytest.approx(m0, abs=1e-4)
        assert group.sigma.iloc[0] == pytest.approx(sigma, abs=1e-4)
        assert int(group.kept.sum()) == math.floor(len(group) * RHO)  # floor(N·ρ) kept
        s = max(sigma, SIGMA_FLOOR)
        weights = [math.exp(-((x - m0) ** 2) / (2 * s * s)) for x in d]
        assert group.filter_weight.to_numpy() == pytest.approx(weights, rel=1e-3, abs=1e-6)
        beta = max(BETA0 * (1 + ALPHA * (d[group.kept].mean() - m0)), 1e-3)  # β from the KEPT mean
        assert group.beta.to_numpy() == pytest.approx([beta] * len(group), rel=1e-4)
        m0_prev, sigma_prev = group.m0.iloc[0], group.sigma.iloc[0]


def test_logged_beta_is_the_mean_of_the_micro_batch_betas(exported: tuple) -> None:
    metrics, pairs, _ = exported
    logged = metrics[metrics.key == "train/beta"].set_index("step").value
    per_step = pairs.groupby("step").beta.mean()
    assert logged.to_numpy() == pytest.approx(per_step.loc[logged.index].to_numpy(), rel=1e-5)


def test_bad_config_names_the_field(tmp_path: Path) -> None:
    result = cli(["train", "tiny-dpo", "--set", "optim.lr=1e10", "--set", "nosuch.key=1"], tmp_path)
    assert result.returncode == 2
    assert "optim.lr" in result.stderr and "nosuch" in result.stderr


def test_a_rule_judge_that_cannot_be_imported_is_refused_before_the_run_is_recorded(tmp_path: Path) -> None:
    judge = [
        "--set",
        "evaluation.judge.kind=rule",
        "--set",
        "evaluation.judge.entry_point=no_such_package.judges:score",
    ]
    result = cli(["train", "tiny-dpo", *judge], tmp_path)
    assert result.returncode == 2
    assert "evaluation.judge.entry_point" in result.stderr and "no_such_package" in result.stderr
    runs = cli(["runs"], tmp_path)
    assert runs.returncode == 0 and "tiny-dpo" not in runs.stdout
