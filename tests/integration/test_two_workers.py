"""Two real ``alignscope worker`` processes on Redis + PostgreSQL share the queue: several runs
submitted over HTTP at once are each trained by exactly one worker, both workers take work
(concurrency 1, prefetch 1 each), every run succeeds and no row is stored twice."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from backend.storage import runs
from backend.storage.tables import metric_points, metric_series, pair_records
from tests.integration.conftest import Api, ProcessKeeper, Service, loss_steps, tiny_config

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]
RUNS, STEPS = 4, 4


def _rows(engine: Engine, table, run_id: str) -> tuple[int, int]:
    """(rows of ``table`` for the run, distinct natural keys among them)."""
    if table is metric_points:  # a point names its run through its series
        series = metric_series.c
        source = metric_points.join(metric_series, series.id == table.c.series_id)
        owner, key = series.run_id, (series.key, table.c.step)
    else:
        source, owner, key = table, table.c.run_id, (table.c.step, table.c.micro_batch, table.c.pair_id)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(source).where(owner == run_id)).scalar_one()
        distinct = select(*key).select_from(source).where(owner == run_id).distinct().subquery()
        return total, conn.execute(select(func.count()).select_from(distinct)).scalar_one()


def _started_by(workers: list[Service], run_id: str) -> list[int]:
    """Indexes of the workers whose supervisor started a trainer for ``run_id`` (from their logs)."""
    line = f"run {run_id} attempt 1: trainer pid"
    return [index for index, worker in enumerate(workers) if line in worker.output()]


def test_two_workers_share_the_runs_and_train_each_exactly_once(
    scaleout: ProcessKeeper, scaleout_api: Api, pg_engine: Engine, data_dir: Path
) -> None:
    workers = [scaleout.worker(), scaleout.worker()]
    ids = [
        scaleout_api.submit(tiny_config(f"optim.max_steps={STEPS}", f"name=pair-{n}")) for n in range(RUNS)
    ]
    done = [scaleout_api.wait(run_id, ("succeeded", "failed", "stopped"), 120) for run_id in ids]
    assert [(r["status"], r["attempt"], r["step"]) for r in done] == [("succeeded", 1, STEPS)] * RUNS
    started = {run_id: _started_by(workers, run_id) for run_id in ids}
    assert all(len(found) == 1 for found in started.values()), started  # exactly one worker each
    assert {found[0] for found in started.values()} == {0, 1}  # both took work
    for run_id in ids:
        with pg_engine.connect() as conn:
            row = runs.get_run(conn, run_id)
        assert row is not None and row.environment is not None
        recorded = json.loads(row.environment)["worker"]  # "<host>:<pid>" of the supervising worker
        (worker,) = started[run_id]
        assert re.fullmatch(rf".+:{workers[worker].process.pid}", recorded)
        assert [p.name for p in (data_dir / "logs" / run_id).iterdir()] == ["attempt-1.log"]
        assert loss_steps(pg_engine, run_id) == list(range(1, STEPS + 1))
        for table in (metric_points, pair_records):
            total, distinct = _rows(pg_engine, table, run_id)
            assert total == distinct > 0, table.name
