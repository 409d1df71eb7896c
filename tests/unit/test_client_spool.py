"""The client's message batching and spool (no server: an offline run spools everything)."""

from __future__ import annotations

import json
import math

import pytest

import alignscope
from alignscope.messages import requests, wire
from alignscope.spool import Spool
from contracts.events import MetricPoint, PairRecord, PairText

RECORD = PairRecord(1, 0, "p", -1.0, -2.0, -1.5, -1.5, 3, 4, 0.5, 1.0, True, 0.1, math.nan, math.nan)


def batch(seq: int, rows: int = 1) -> dict:
    return {"seq": seq, "kind": "batch", "body": {"points": [MetricPoint("k", seq, 1.0, 0.0)] * rows}}


def test_requests_merge_consecutive_batches_in_order_up_to_max_rows() -> None:
    messages = [{"seq": 0, "kind": "open", "body": {"name": "x"}}, batch(1), batch(2), batch(3, rows=3),
                {"seq": 4, "kind": "finish", "body": {"status": "succeeded"}}]  # fmt: skip
    sent = list(requests("r" * 32, [wire(m) for m in messages], max_rows=4))
    assert [(r.method, r.path.rsplit("/", 1)[-1], r.seqs) for r in sent] == [
        ("PUT", "r" * 32, (0,)), ("POST", "batch", (1, 2)), ("POST", "batch", (3,)), ("POST", "finish", (4,)),
    ]  # fmt: skip
    assert sent[1].body["points"] == [["k", 1, 1.0, 0.0], ["k", 2, 1.0, 0.0]] and sent[1].body["seq"] == 1


def test_spool_reads_in_seq_order_skips_a_torn_line_and_forgets_what_was_delivered(tmp_path) -> None:
    spool = Spool(tmp_path, "a" * 32)
    spool.append([batch(2), batch(0)])
    spool.append([batch(1)])
    with spool.path.open("a") as handle:
        handle.write('{"seq": 3, "kind": "ba')  # a writer killed mid-line
    assert [m["seq"] for m in spool.read()] == [0, 1, 2]
    spool.remove({0, 2})
    assert [m["seq"] for m in Spool(tmp_path, "a" * 32).read()] == [1]
    spool.remove({1})
    assert not spool.path.exists() and len(spool) == 0


def test_an_offline_run_spools_everything_in_order(tmp_path, capsys) -> None:
    run = alignscope.init("offline", {"loss": {"kind": "dpo", "beta": 0.1}}, url=None, spool_dir=tmp_path)
    for step in (1, 2, 3):
        run.log({"train/loss": 0.7 / step}, step=step)
        run.log_pairs([RECORD], [PairText("p", "q", "c", "r")])
    finished = run.finish()
    assert not finished.delivered and f"alignscope sync {tmp_path}" in capsys.readouterr().err
    lines = [json.loads(line) for line in finished.spool.read_text().splitlines()]
    assert [m["kind"] for m in sorted(lines, key=lambda m: m["seq"])] == ["open", *["batch"] * 6, "finish"]
    assert lines[0]["body"]["config"]["loss"]["beta"] == 0.1
    with pytest.raises(RuntimeError, match="finished"):
        run.log({"x": 1.0}, step=4)
    with pytest.raises(ValueError, match="32 lowercase hex"):
        alignscope.init("bad", run_id="not-hex", spool_dir=tmp_path)
