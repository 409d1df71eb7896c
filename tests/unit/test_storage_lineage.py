"""A resumed run's history is its lineage (issue 19 item 1): parent's steps up to the resume point,
then its own — in the series, the keys, the pair records, the pair summary and both exports; a clone
is its own history; a grandchild chains through its parent."""

from __future__ import annotations

import json
import math

import pytest

from backend.api.queries import compare_of, keys_of, metrics_of
from backend.storage import exports, lineage, metrics, pairs, runs
from backend.storage.lineage import Segment
from contracts.events import MetricPoint, PairRecord, PairText

ALERT = "train/3d/alert/degradation"


def _run(conn, parent: str | None = None, resume_step: int | None = None, name: str = "r") -> str:
    run_id = runs.create_run(conn, "{}", name, None, None, parent, resume_step)
    runs.claim_run(conn, run_id, 1)
    return run_id


def _steps(conn, run_id: str, steps: range, base: float, alert_at: int | None = None) -> None:
    """Loss base + step at each step (so a value tells which run logged it), an alert series, one
    pair record per step and the texts of the three pairs."""
    points = [MetricPoint("train/loss", s, base + s, float(s)) for s in steps]
    points += [MetricPoint(ALERT, s, 1.0 if s == alert_at else 0.0, float(s)) for s in steps]
    metrics.insert_points(conn, run_id, 1, points)
    record = [PairRecord(s, 0, f"p{s % 3}", -1, -2, -1, -2, 3, 4, 0.1 * s, 0.5, s % 2 == 0, 0.1, 0, 1)
              for s in steps]  # fmt: skip
    pairs.insert_pair_records(conn, run_id, 1, record)
    pairs.insert_pair_texts(conn, run_id, [PairText(f"p{i}", f"prompt {i}", "yes", "no") for i in range(3)])


@pytest.fixture
def family(engine):
    """parent: steps 1..10 (D2 alert at 6), stopped with a checkpoint at 8 (its steps 9, 10 are
    superseded); child resumes after 8: steps 9..14; grandchild resumes the child after 12: 13..15;
    a clone of the parent (no resume step): its own steps 1..3."""
    with engine.begin() as conn:
        parent = _run(conn, name="parent")
        _steps(conn, parent, range(1, 11), 1000, alert_at=6)
        child = _run(conn, parent, 8, name="child")
        _steps(conn, child, range(9, 15), 2000)
        grandchild = _run(conn, child, 12, name="grandchild")
        _steps(conn, grandchild, range(13, 16), 3000)
        clone = _run(conn, parent, name="clone")
        _steps(conn, clone, range(1, 4), 4000)
    return parent, child, grandchild, clone


def test_segments_chain_resumes_and_stop_at_a_clone(engine, family) -> None:
    parent, child, grandchild, clone = family
    with engine.connect() as conn:
        assert lineage.segments(conn, grandchild) == [
            Segment(parent, "parent", None, 8),
            Segment(child, "child", 8, 12),
            Segment(grandchild, "grandchild", 12, None),
        ]
        assert lineage.segments(conn, clone) == [Segment(clone, "clone", None, None)]
        assert lineage.segments(conn, parent) == [Segment(parent, "parent", None, None)]
        assert lineage.segments(conn, "nope") == []


def test_series_and_keys_cover_the_lineage(engine, family) -> None:
    parent, child, grandchild, _ = family
    with engine.connect() as conn:
        out = metrics_of(conn, grandchild, None, 1000)
        assert keys_of(conn, lineage.segments(conn, grandchild)) == sorted([ALERT, "train/loss"])
    loss = out.series["train/loss"]
    assert loss.steps == list(range(1, 16))
    # the parent's steps 9 and 10 were superseded by the child's, the child's 13 and 14 by the grandchild's
    owners = [1000] * 8 + [2000] * 4 + [3000] * 3
    assert loss.values == [base + s for base, s in zip(owners, range(1, 16), strict=True)]
    assert out.series[ALERT].values[5] == 1.0  # the parent's D2 alert at step 6 is in the child's history
    assert [(s.run_id, s.after_step, s.until_step) for s in out.lineage] == [
        (parent, None, 8),
        (child, 8, 12),
        (grandchild, 12, None),
    ]


def test_pairs_summary_and_compare_follow_the_lineage(engine, family) -> None:
    parent, child, _, _ = family
    with engine.connect() as conn:
        chain = lineage.segments(conn, child)
        rows = pairs.query_pairs(conn, child, order="step", descending=False, limit=100, chain=chain)
        owners = [(r.record.step, "parent" if r.record.step <= 8 else "child") for r in rows]
        at_step_3 = pairs.query_pairs(conn, child, step=3, chain=chain)
        at_step_9 = pairs.query_pairs(conn, child, step=9, chain=chain)
        summary = pairs.pair_summary(conn, child, kept=None, chain=chain)
        compared = compare_of(conn, [child, parent], ["train/loss"], 1000)
    assert [step for step, _ in owners] == list(range(1, 15))
    assert len(at_step_3) == 1 and at_step_3[0].prompt == "prompt 0"
    assert len(at_step_9) == 1  # the child's step 9, not the parent's superseded one
    assert sum(s.times_seen for s in summary) == 14 and all(s.prompt for s in summary)
    assert compared.series[child]["train/loss"].steps == list(range(1, 15))
    assert compared.series[parent]["train/loss"].steps == list(range(1, 11))
    assert [s.run_id for s in compared.lineage[child]] == [parent, child]


def test_exports_cover_the_lineage_with_texts_and_z(engine, family) -> None:
    parent, child, _, _ = family
    with engine.connect() as conn:
        chain = lineage.segments(conn, child)
        metric_rows = list(exports.lineage_metric_rows(conn, chain))
        pair_rows = list(exports.lineage_pair_rows(conn, chain))
    loss = [(r[0], r[2]) for r in metric_rows if r[1] == "train/loss"]
    assert loss == [(parent, s) for s in range(1, 9)] + [(child, s) for s in range(9, 15)]
    columns = exports.PAIR_EXPORT_COLUMNS
    first = dict(zip(columns, pair_rows[0], strict=True))
    assert (first["run_id"], first["step"], first["prompt"], first["chosen"]) == (
        parent,
        1,
        "prompt 1",
        "yes",
    )
    assert first["z"] == pytest.approx((0.1 - 0.0) / 1.0)  # (M − M0) / σ with M0 = 0, σ = 1
    assert [r[columns.index("step")] for r in pair_rows] == list(range(1, 15))
    assert not any(isinstance(v, float) and math.isnan(v) for v in first.values())


def test_a_resumed_run_exposes_its_resume_step(engine, family) -> None:
    from backend.api.models import RunOut

    _, child, _, clone = family
    with engine.connect() as conn:
        assert RunOut.of(runs.get_run(conn, child)).resume_step == 8
        assert RunOut.of(runs.get_run(conn, clone)).resume_step is None
    assert json.loads(RunOut.of(runs.get_run(engine.connect(), child)).model_dump_json())["resume_step"] == 8


def test_migration_0012_marks_existing_resumes_and_not_clones(tmp_path) -> None:
    from sqlalchemy import text

    from backend.storage import db

    url = f"sqlite:///{tmp_path / 'old.db'}"
    db.upgrade(url, "0011")
    old = db.make_engine(url)
    columns = "id, name, status, config, attempt, created_at, step, parent_id, checkpoint_path"
    with old.begin() as conn:
        for values in [
            "'p', 'parent', 'stopped', '{\"a\": 1}', 1, 0, 47, NULL, '/ck/p'",
            "'r', 'resumed', 'running', '{\"a\": 1}', 1, 1, 60, 'p', '/ck/r'",
            "'c', 'clone', 'running', '{\"a\": 2}', 1, 2, 5, 'p', '/ck/c'",
        ]:
            conn.execute(text(f"INSERT INTO runs ({columns}) VALUES ({values})"))
    old.dispose()
    engine = db.init_db(url)
    with engine.connect() as conn:
        resume = dict(conn.execute(text("SELECT id, resume_step FROM runs")).tuples().all())
    engine.dispose()
    assert resume == {"p": None, "r": 47, "c": None}
