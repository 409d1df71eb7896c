"""The client writing straight into a store on the same machine (a database URL instead of a server):
the run reads like one that came through the ingest API, and a re-sent message adds nothing."""

from __future__ import annotations

import math

from sqlalchemy import select

import alignscope
from alignscope.store import StoreTransport
from backend.storage import metrics, runs
from backend.storage.db import make_engine
from backend.storage.tables import pair_records, pairs
from contracts.events import PairRecord, PairText


def test_a_run_logged_to_a_database_url(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'alignscope.db'}"
    run = alignscope.init(
        "local", {"loss": {"kind": "dpo", "beta": 0.1}}, url=url, spool_dir=tmp_path / "spool"
    )
    for step in (1, 2):
        record = PairRecord(
            step, 0, "p", -1.0, -2.0, -1.5, -1.5, 3, 4, 0.5, 1.0, True, 0.1, math.nan, math.nan
        )
        run.log_step(step, [], [record], [PairText("p", "q", "c", "r")] if step == 1 else [])
        run.log({"train/loss": 0.7 - step / 100}, step=step)
    finished = run.finish()
    assert finished.delivered and not finished.spool.exists()
    transport = StoreTransport(url)
    again = {"pairs": [[1, 0, "p", -1.0, -2.0, -1.5, -1.5, 3, 4, 0.5, 1.0, True, 0.1, math.nan, math.nan]]}
    ack = transport.send("POST", f"/api/ingest/runs/{run.id}/batch", again)
    assert (ack["pairs"], ack["status"]) == (0, "succeeded")
    transport.close()
    engine = make_engine(url)
    with engine.connect() as conn:
        row = runs.get_run(conn, run.id)
        assert row is not None and (row.status, row.source, row.step) == ("succeeded", "python", 2)
        assert metrics.series(conn, run.id, "train/loss") == [(1, 0.7 - 1 / 100), (2, 0.7 - 2 / 100)]
        assert len(conn.execute(select(pair_records).where(pair_records.c.run_id == run.id)).all()) == 2
        assert len(conn.execute(select(pairs).where(pairs.c.run_id == run.id)).all()) == 1
    engine.dispose()
