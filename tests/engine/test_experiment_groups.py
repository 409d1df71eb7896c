"""Experiment groups from the worker's side, with a two-run toy experiment (seconds on a CPU): the
``experiments.run`` task claims the API's queued row and runs ``alignscope experiment … --group`` in a
real subprocess, which stores the summary and the outcome in the row; a duplicate delivery does
nothing; a command that dies marks the group failed with its output; ``--summarize`` stores the
summary again from the stored runs, and creates the row of a group that had none."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import delete, update

from backend.settings import get_settings
from backend.storage import experiment_groups, runs
from backend.storage.db import init_db
from backend.storage.tables import experiment_groups as groups_table
from worker.cli.main import main
from worker.jobs.group_supervisor import experiment_argv, supervise_group

SPEC = {
    "name": "mini-toy",
    "title": "mini toy",
    "summary": "toy",
    "base": {
        "model": {"source": "toy", "toy": {"scenario": "s1", "hidden": 16, "sft_steps": 100}},
        "data": {"source": "toy", "shuffle": False},
        "optim": {"lr": 0.001, "batch_size": 16, "micro_batch_size": 16, "max_steps": 40,
                  "max_grad_norm": None},
        "diagnostics": {"window": 20},
        "log_every": 20,
    },
    "runs": [{"label": "s1 on/on"}, {"label": "s2 off/on", "set": {"model": {"toy": {"scenario": "s2"}}}}],
    "paper": {"citation": "a test",
              "claims": [{"claim": "s1 above s2", "kind": "higher", "a": "s1 on/on", "b": "s2 off/on"}]},
}  # fmt: skip


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A data dir (the subprocesses inherit it), its engine, and the spec as a YAML file."""
    monkeypatch.setenv("ALIGNSCOPE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ALIGNSCOPE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    engine = init_db(get_settings().database_url)
    spec = tmp_path / "mini-toy.yaml"
    spec.write_text(json.dumps(SPEC))  # JSON is YAML
    yield engine, spec
    engine.dispose()
    get_settings.cache_clear()


def queued(engine, group: str, experiment: str) -> experiment_groups.GroupRow:
    with engine.begin() as conn:
        experiment_groups.create_group(conn, group, experiment, "mini toy", False, None, 2)
        row = experiment_groups.get_group(conn, group)
    assert row is not None
    return row


def group_row(engine, group: str) -> experiment_groups.GroupRow:
    with engine.connect() as conn:
        row = experiment_groups.get_group(conn, group)
    assert row is not None
    return row


def test_the_task_runs_the_group_and_summarize_rebuilds_it(store, monkeypatch):
    engine, spec = store
    monkeypatch.setattr("worker.experiments.figure.write_png", lambda *_: False)  # in this process only
    row = queued(engine, "mini-1", str(spec))
    assert experiment_argv(row)[1:] == ["-m", "worker.experiments", "mini-1"]  # the rest is read from the row
    assert supervise_group(engine, "mini-1", get_settings().data_dir, threading.Event(), 0.1) == "succeeded"
    assert supervise_group(engine, "mini-1", get_settings().data_dir, threading.Event()) == "not claimed"
    done = group_row(engine, "mini-1")
    assert (done.status, done.error, done.message, done.planned_runs) == ("succeeded", None, "finished", 2)
    summary = done.summary
    assert summary is not None and summary.kind == "toy" and summary.experiment == "mini-toy"
    assert [r.label for r in summary.table.rows] == ["s1 on/on", "s2 off/on"]
    assert [c.name for c in summary.table.columns][:3] == ["p_w first", "peak p_w", "peak step"]
    assert summary.paper.claims == ["s1 above s2"] and summary.paper.citation == "a test"
    assert summary.verdicts[0].claim == "s1 above s2" and summary.verdicts[0].category in (
        "agrees",
        "disagrees",
    )
    assert summary.figure.kind == "lines" and len(summary.figure.panels) == 4
    assert [len(p.series) for p in summary.figure.panels] == [2, 2, 2, 2]
    assert summary.figure.panels[0].series[0].x == [20, 40]  # logged every 20 of 40 steps
    folder = get_settings().data_dir / "experiments" / "mini-1"
    assert json.loads((folder / "summary.json").read_text())["group"] == "mini-1"
    assert "## Verdicts" in (folder / "summary.md").read_text() and (folder / "figure.html").is_file()
    with engine.begin() as conn:  # a crash lost the summary, then the row itself
        conn.execute(update(groups_table).values(summary=None, status="running"))
    assert main(["experiment", str(spec), "--summarize", "mini-1"]) == 0
    again = group_row(engine, "mini-1")
    assert again.status == "succeeded" and again.summary is not None
    assert again.summary.table == summary.table and again.summary.verdicts == summary.verdicts
    with engine.begin() as conn:
        conn.execute(delete(groups_table))
    assert main(["experiment", str(spec), "--summarize", "mini-1"]) == 0
    rebuilt = group_row(engine, "mini-1")
    assert (rebuilt.experiment, rebuilt.quick, rebuilt.seeds, rebuilt.planned_runs) == (
        "mini-toy",
        False,
        [0],
        2,
    )
    assert rebuilt.summary is not None and rebuilt.summary.table == summary.table
    with engine.connect() as conn:
        assert {r.status for r in runs.list_runs(conn, group="mini-1")} == {"succeeded"}


def test_a_command_that_fails_marks_the_group_failed_with_its_output(store):
    engine, _ = store
    queued(engine, "broken-1", "no-such-preset")
    assert supervise_group(engine, "broken-1", get_settings().data_dir, threading.Event(), 0.1) == "failed"
    row = group_row(engine, "broken-1")
    assert (
        row.status == "failed" and "exited with status 2" in row.error and "unknown experiment" in row.error
    )
    assert main(["experiment", "--summarize", "no-such-group"]) == 2
