"""Two CPU processes (gloo) train exactly like one process on the same global batch."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
from pathlib import Path

import pytest

from contracts import metric_keys as mk
from tests.engine.test_loop import small
from worker.engine.loop import train
from worker.engine.sinks import ListSink

COMPARED = (mk.TRAIN_BETA, mk.BDPO_M0, mk.BDPO_SIGMA, mk.TRAIN_LOSS, mk.REWARDS_MARGIN, mk.BDPO_KEPT_FRACTION)
OVERRIDES = ("optim.max_steps=5", "optim.batch_size=16", "optim.micro_batch_size=8")


def _series(sink: ListSink) -> dict[str, list[float]]:
    return {key: [v for _, v in sink.series(key)] for key in COMPARED}


def _rank_main(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))  # fmt: skip
    import torch

    torch.set_num_threads(1)
    sink = ListSink()
    summary = train(small("tiny-beta-dpo", *OVERRIDES), sink)
    result = {"status": summary.status, "series": _series(sink), "pairs": len(sink.pair_records)}
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    single = ListSink()
    train(small("tiny-beta-dpo", *OVERRIDES), single)
    port = _free_port()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_rank_main, args=(rank, port, str(tmp_path))) for rank in (0, 1)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=240)
        assert proc.exitcode == 0
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0["status"] == rank1["status"] == "succeeded"
    assert rank0["pairs"] == len(single.pair_records) and rank1["pairs"] == 0  # only rank 0 records
    expected = _series(single)
    for key in COMPARED:
        assert rank0["series"][key] == pytest.approx(expected[key], rel=1e-4, abs=1e-5), key
