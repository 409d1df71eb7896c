"""backend.storage.experiment_groups on SQLite: the group's state machine, unique ids, the summary
document stored as JSON (NaN → null), the run counts per group and the heartbeat of running groups."""

from __future__ import annotations

import json
import math
import time

import pytest
from sqlalchemy import select

from backend.storage import experiment_groups as groups
from backend.storage import runs
from backend.storage.tables import experiment_groups as table


def summary(group: str, value: float = 45.0) -> groups.GroupSummary:
    """A small win-rate summary: DPO vs β-DPO at T=0, one verdict, one bar series."""
    return groups.GroupSummary(
        group=group,
        experiment="beta-dpo-ablations",
        title="β-DPO ablations",
        kind="win_rates",
        quick=True,
        baseline="DPO",
        runs=[groups.GroupRun(run_id="r1", label="DPO", column="", seed=0, status="succeeded", seconds=3.5)],
        table=groups.Table(
            columns=[groups.Column(name="T=0")],
            rows=[groups.TableRow(label="DPO", cells=[groups.Estimate(value=value, low=35.0, high=55.0)])],
        ),
        paper=groups.Paper(
            citation="Wu et al.", columns=["Pythia-410M"], rows=[groups.PaperRow(label="DPO", values=[26.19])]
        ),
        verdicts=[
            groups.Verdict(
                verdict="too noisy to tell",
                category="noisy",
                text="β-DPO vs DPO: too noisy to tell",
                method="β-DPO",
                column="T=0",
                difference=[1.0, -8.0, 10.0],
                paper_direction=3.99,
            )
        ],
        headline="Of 1 comparisons with the paper: 1 is too noisy to tell.",
        figure=groups.Figure(
            kind="intervals",
            title="t",
            panels=[
                groups.Panel(
                    series=[groups.Series(name="DPO", x=["T=0"], y=[value], low=[35.0], high=[55.0])]
                )
            ],
        ),
        created_at=1.0,
    )


def create(engine, group="g", status="queued", seeds=None) -> bool:
    with engine.begin() as conn:
        return groups.create_group(conn, group, "toy-3d", "The toy", True, seeds, 6, status)


def get(engine, group="g") -> groups.GroupRow:
    with engine.connect() as conn:
        row = groups.get_group(conn, group)
    assert row is not None
    return row


def test_create_get_and_a_taken_id(engine):
    assert create(engine, seeds=[0, 1])
    assert not create(engine)  # same id: nothing changes
    row = get(engine)
    assert (row.experiment, row.title, row.status, row.quick, row.seeds, row.planned_runs) == (
        "toy-3d", "The toy", "queued", True, [0, 1], 6,
    )  # fmt: skip
    assert row.summary is None and not row.has_summary and row.created_at == row.updated_at
    with engine.connect() as conn:
        assert groups.get_group(conn, "nope") is None


def test_new_group_adds_a_suffix_when_the_name_is_taken(engine):
    with engine.begin() as conn:
        ids = [
            groups.new_group(conn, "toy-3d-20260101-000000", "toy-3d", "t", False, None, 6) for _ in range(3)
        ]
    assert ids == ["toy-3d-20260101-000000", "toy-3d-20260101-000000-2", "toy-3d-20260101-000000-3"]


def test_claim_is_conditional_so_a_duplicate_delivery_does_nothing(engine):
    create(engine)
    with engine.begin() as conn:
        assert groups.claim_group(conn, "g")
        assert not groups.claim_group(conn, "g")  # already running
        assert not groups.claim_group(conn, "nope")
    assert get(engine).status == "running"


def test_start_message_and_finish(engine):
    create(engine)
    with engine.begin() as conn:
        assert groups.start_group(conn, "g", 7, "starting")
        assert groups.set_message(conn, "g", "run 1 of 7")
    row = get(engine)
    assert (row.status, row.planned_runs, row.message) == ("running", 7, "run 1 of 7")
    with engine.begin() as conn:
        assert groups.finish_group(conn, "g", "failed", "run 3 failed")
        # the watcher's late "failed" never overwrites what the command recorded
        assert not groups.finish_group(conn, "g", "failed", "exit 1")
        assert not groups.set_message(conn, "g", "late")
        assert not groups.start_group(conn, "g", 7, "again")
    row = get(engine)
    assert (row.status, row.error, row.message) == ("failed", "run 3 failed", "failed")
    with engine.begin() as conn:  # --summarize settles a finished group again
        assert groups.finish_group(conn, "g", "succeeded", only_active=False)
    assert (get(engine).status, get(engine).error) == ("succeeded", None)


def test_finish_refuses_other_statuses(engine):
    create(engine)
    with engine.begin() as conn, pytest.raises(ValueError):
        groups.finish_group(conn, "g", "running")
    with engine.begin() as conn, pytest.raises(ValueError):
        groups.create_group(conn, "h", "x", "x", False, None, 1, "stopped")


def test_summary_round_trips_and_nan_is_stored_as_null(engine):
    create(engine)
    with engine.begin() as conn:
        assert groups.store_summary(conn, "g", summary("g", value=math.nan))
        assert not groups.store_summary(conn, "nope", summary("nope"))
    with engine.connect() as conn:
        text = conn.execute(select(table.c.summary).where(table.c.id == "g")).scalar_one()
    stored = json.loads(text)
    assert stored["table"]["rows"][0]["cells"][0]["value"] is None  # NaN → null in the JSON
    assert stored["figure"]["panels"][0]["series"][0]["y"] == [None]
    row = get(engine)
    assert row.summary is not None
    assert row.summary.paper.rows[0].values == [26.19]
    assert row.summary.verdicts[0].difference == [1.0, -8.0, 10.0]
    assert row.has_summary
    with engine.connect() as conn:  # listings leave the summary out
        listed = groups.list_groups(conn)[0]
    assert (listed.has_summary, listed.summary) == (True, None)
    with engine.begin() as conn:  # replaced, not appended
        groups.store_summary(conn, "g", summary("g", value=50.0))
    assert get(engine).summary.table.rows[0].cells[0].value == 50.0


def test_list_newest_first_and_run_counts(engine):
    create(engine, "old")
    create(engine, "new")
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == "old").values(created_at=0.0))
        for name, group in (("a", "new"), ("b", "new"), ("c", "old"), ("d", None)):
            run_id = runs.create_run(conn, "{}", name, None, group)
            if name == "a":
                runs.claim_run(conn, run_id, 1)
    with engine.connect() as conn:
        assert [g.id for g in groups.list_groups(conn)] == ["new", "old"]
        assert [g.id for g in groups.list_groups(conn, limit=1, offset=1)] == ["old"]
        counts = groups.run_counts(conn, ["new", "old", "empty"])
        assert groups.run_counts(conn, []) == {}
    assert counts == {"new": {"running": 1, "queued": 1}, "old": {"queued": 1}, "empty": {}}


def test_heartbeat_and_stale_groups(engine):
    create(engine, "q")
    create(engine, "r")
    with engine.begin() as conn:
        assert not groups.touch_group(conn, "q")  # only a running group has a heartbeat
        assert groups.claim_group(conn, "r")
        conn.execute(table.update().where(table.c.id == "r").values(updated_at=100.0))
        assert [g.id for g in groups.list_groups(conn, status="queued")] == ["q"]
        assert groups.fail_stale(conn, 60.0, now=160.0) == []  # 160 − 100 = 60 s: not older than 60 s
        assert groups.touch_group(conn, "r")
        assert groups.fail_stale(conn, 60.0, now=time.time() + 59.0) == []  # renewed just now
        conn.execute(table.update().where(table.c.id == "r").values(updated_at=100.0))
        assert groups.fail_stale(conn, 60.0, now=160.5) == ["r"]
        assert groups.fail_stale(conn, 60.0, now=1000.0) == []  # already failed; "q" is only queued
    row = get(engine, "r")
    assert (row.status, row.message, row.updated_at) == ("failed", "failed", 160.5)
    assert row.error == groups.HEARTBEAT_LOST.format(group="r") and "--summarize r`" in row.error
    assert get(engine, "q").status == "queued"
