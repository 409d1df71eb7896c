"""``alignscope experiment``: run planning, summaries over stored rows, and one end-to-end group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.experiment_spec import ExperimentSpec, load_experiment, planned_runs
from backend.storage import runs
from backend.storage.db import init_db
from backend.storage.evaluations import insert_evaluation, list_evaluations
from backend.storage.metrics import insert_points
from contracts import metric_keys as mk
from contracts.events import EvalRecord, MetricPoint
from worker.experiments.summary import RunResult, pooled_cells, toy_summary, verdict, win_rate_summary

REPO = Path(__file__).resolve().parents[2]


def test_planning_quick_seeds_and_sweeps() -> None:
    spec = load_experiment("batch-vs-instance")
    quick = planned_runs(spec, quick=True)
    assert [(label, column) for label, column, _, _ in quick[:4]] == [
        ("Vanilla DPO", "10%"),
        ("Instance-level", "10%"),
        ("Batch-level", "10%"),
        ("Vanilla DPO", "40%"),
    ]
    assert quick[1][3]["beta_dpo"]["level"] == "instance" and quick[0][3]["optim"]["max_steps"] == 20
    assert quick[3][3]["data"]["constructed"]["high_gap_fraction"] == 0.4
    ablations = load_experiment("beta-dpo-ablations")
    base_row = planned_runs(ablations, quick=True, seeds=[5, 6])[-1]
    assert base_row[0] == "base (SFT, no DPO)" and base_row[2] == 6
    assert base_row[3]["optim"]["max_steps"] == 1  # the run's own setting wins over --quick's 20
    assert len(planned_runs(ablations, quick=False)) == 5 * 3


def _store(tmp_path: Path):
    engine = init_db(f"sqlite:///{tmp_path / 'db.sqlite'}")
    ids = []
    with engine.begin() as conn:
        for name in ("a", "b", "c"):
            run_id = runs.create_run(conn, "{}", name, None, "g")
            runs.claim_run(conn, run_id, 1)
            ids.append(run_id)
    return engine, ids


def test_win_rates_are_pooled_over_seeds(tmp_path: Path) -> None:
    engine, ids = _store(tmp_path)
    records = [(ids[0], 3, 2, 5), (ids[1], 5, 0, 5), (ids[2], 0, 0, 40)]  # (run, wins, ties, losses)
    with engine.begin() as conn:
        for run_id, wins, ties, losses in records:
            insert_evaluation(conn, run_id, EvalRecord(4, 0.0, "rule", "chosen", wins, ties, losses, 0, 0, 1))
            insert_evaluation(conn, run_id, EvalRecord(2, 0.0, "rule", "chosen", 0, 0, 10, 0, 0, 1))  # older
        assert len(list_evaluations(conn, ids[0])) == 2
    results = [
        RunResult(ids[0], "DPO", "", 0, "succeeded", 1.0),
        RunResult(ids[1], "DPO", "", 1, "succeeded", 1.0),
        RunResult(ids[2], "β-DPO", "", 0, "succeeded", 1.0),
    ]
    cells = pooled_cells(engine, results)
    dpo = cells[("DPO", "", 0.0)]
    assert (dpo.wins, dpo.ties, dpo.losses) == (8, 2, 10)  # the last step of each seed, summed
    assert dpo.triple()[0] == pytest.approx(9 / 20)  # (8 + 2/2)/20
    spec = ExperimentSpec(
        name="x",
        title="x",
        base={},
        runs=[{"label": "DPO"}, {"label": "β-DPO"}],
        paper={"columns": ["m"], "rows": {"DPO": [10.0], "β-DPO": [15.0]}},
    )
    lines, data, _ = win_rate_summary(spec, results, engine)
    assert lines[2].startswith("| DPO | 45.0 [")
    only = data["verdicts"][0]
    assert only["paper_direction"] == 5.0 and only["verdict"] == "disagrees"  # 0 % − 45 %: CI below 0


def test_verdict_wording() -> None:
    assert verdict((0.05, 0.01, 0.09), 3.0) == "agrees"
    assert verdict((-0.05, -0.09, -0.01), 3.0) == "disagrees"
    assert verdict((0.0, -0.02, 0.02), 5.0).startswith("weaker than the paper")  # +5 points lies outside ±2
    assert verdict((0.0, -0.08, 0.08), 5.0) == "too noisy to tell"
    assert verdict((0.0, -0.08, 0.08), 0.0) == "no paper direction"


def test_toy_summary_reads_the_series(tmp_path: Path) -> None:
    engine, ids = _store(tmp_path)
    chosen = {ids[0]: [0.4, 0.99, 0.6], ids[1]: [0.02, 0.2, 0.3]}
    with engine.begin() as conn:
        for run_id, values in chosen.items():
            points = [MetricPoint(mk.TOY_PROB_CHOSEN, 20 * (i + 1), v, 0.0) for i, v in enumerate(values)]
            points += [
                MetricPoint(k, 60, 0.25, 0.0)
                for k in (mk.TOY_PROB_REJECTED, mk.TOY_MASS_OUT_OF_PAIR, mk.TOY_MASS_UNSEEN)
            ]
            insert_points(conn, run_id, 1, points)
    claims = [
        {"claim": "s1 above s2", "kind": "higher", "a": "s1", "b": "s2"},
        {"claim": "s1 degrades", "kind": "peak_then_fall", "a": "s1"},
        {"claim": "s2 degrades", "kind": "peak_then_fall", "a": "s2"},
    ]
    spec = ExperimentSpec(
        name="t",
        title="t",
        summary="toy",
        base={},
        runs=[{"label": "s1"}, {"label": "s2"}],
        paper={"claims": claims},
    )
    results = [
        RunResult(ids[0], "s1", "", 0, "succeeded", 1.0),
        RunResult(ids[1], "s2", "", 0, "succeeded", 1.0),
    ]
    lines, data, figure = toy_summary(spec, results, engine)
    assert lines[2] == "| s1 | 0.400 | 0.990 (40) | 0.600 | 0.250 | 0.250 |"
    assert [v["verdict"] for v in data["verdicts"]] == [
        "agrees",
        "agrees",
        "disagrees",
    ]  # 0.6 > 0.3; 0.99−0.6 > 0.05
    assert len(figure.data) == 2 * 4  # four panels per run


def test_an_experiment_group_runs_end_to_end(tmp_path: Path) -> None:
    spec = {
        "name": "mini",
        "title": "mini group",
        "summary": "win_rates",
        "seeds": [0],
        "warmup": {
            "model": {"source": "tiny", "tiny": {"hidden_size": 32, "intermediate_size": 64}},
            "data": {
                "constructed": {"tasks": ["sort"], "num_pairs": 64},
                "max_length": 48,
                "max_prompt_length": 24,
            },
            "steps": 3,
        },
        "base": {
            "model": {"source": "pretrained", "path": "{warmup}"},
            "data": {
                "constructed": {"tasks": ["sort"], "num_pairs": 64},
                "max_length": 48,
                "max_prompt_length": 24,
                "eval_fraction": 0.2,
            },
            "optim": {"max_steps": 2, "batch_size": 8, "micro_batch_size": 8},
            "checkpoint_every": 0,
            "evaluation": {"at_end": True, "temperatures": [0.0], "num_prompts": 6, "max_new_tokens": 6},
        },
        "runs": [{"label": "DPO"}, {"label": "β-DPO", "set": {"beta_dpo": {"enabled": True}}}],
        "paper": {"citation": "none", "columns": ["m"], "rows": {"DPO": [1.0], "β-DPO": [2.0]}},
    }
    path = tmp_path / "mini.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    env = {
        **os.environ,
        "ALIGNSCOPE_DATA_DIR": str(tmp_path / "store"),
        "ALIGNSCOPE_CACHE_DIR": str(tmp_path / "c"),
    }
    env.pop("ALIGNSCOPE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", "experiment", str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| DPO | " in done.stdout and "| β-DPO | " in done.stdout and "## Verdicts" in done.stdout
    assert "warm-up model: 3 SFT steps" in done.stderr
    folder = next((tmp_path / "store" / "experiments").glob("mini-*"))
    summary = json.loads((folder / "summary.json").read_text())
    assert [r["label"] for r in summary["runs"]] == ["DPO", "β-DPO"]
    assert all(r["status"] == "succeeded" for r in summary["runs"]) and (folder / "figure.html").is_file()
    engine = init_db(f"sqlite:///{tmp_path / 'store' / 'alignscope.db'}")
    with engine.connect() as conn:
        rows = runs.list_runs(conn)
        assert {row.group_name for row in rows} == {summary["group"]}
        assert all(len(list_evaluations(conn, row.id)) == 1 for row in rows)
