"""worker.jobs.reconciler on SQLite with a recording waker (the broker side is exercised by the real-process
tests in tests/integration/test_experiment_group_recovery.py): a queued group's task is sent again
only once it has waited ``resend_after_s`` and the broker holds fewer messages than there are queued
runs and groups; a running group whose heartbeat is stale is failed, a fresh one left alone; a
stale run is still re-queued and sent at once."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from backend.storage import experiment_groups as groups
from backend.storage import runs
from backend.storage.tables import experiment_groups as groups_table
from backend.storage.tables import runs as runs_table
from contracts.config import RunConfig
from worker.jobs.reconciler import ReconcilePolicy, Reconciler, group_queue

POLICY = ReconcilePolicy(every_s=1.0, stale_after_s=60.0, max_attempts=3, resend_after_s=30.0)
CUDA_SPEC = {
    "name": "on-gpu",
    "title": "on the gpu",
    "summary": "toy",
    "base": {"device": "cuda", "model": {"source": "toy"}, "data": {"source": "toy"}},
    "runs": [{"label": "one"}],
}


@dataclass
class Waker:
    """Records what the reconciler sends; ``messages`` is what the broker says it holds."""

    messages: int | None = 0
    runs: list[tuple[str, int]] = field(default_factory=list)
    groups: list[tuple[str, str]] = field(default_factory=list)

    def enqueue(self, run_id: str, attempt: int, config: RunConfig) -> None:
        self.runs.append((run_id, attempt))

    def enqueue_experiment(self, group: str, queue: str) -> None:
        self.groups.append((group, queue))

    def waiting(self) -> int | None:
        return self.messages


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def queued_group(engine, group: str, experiment: str) -> None:
    with engine.begin() as conn:
        assert groups.create_group(conn, group, experiment, "t", True, None, 1)


def test_a_lost_group_message_is_sent_again_to_the_groups_queue(engine, tmp_path: Path):
    spec = tmp_path / "on-gpu.yaml"
    spec.write_text(json.dumps(CUDA_SPEC))  # JSON is YAML
    assert (group_queue(str(spec)), group_queue("no-such-preset")) == ("gpu", "celery")
    queued_group(engine, "a", "no-such-preset")
    queued_group(engine, "b", str(spec))
    waker, clock = Waker(), Clock()
    reconciler = Reconciler(engine, waker, POLICY, clock=clock)
    assert reconciler.once().groups == []  # first seen at t = 0
    clock.now = 29.0
    assert reconciler.once().groups == []  # not yet resend_after_s (30 s) old
    clock.now, waker.messages = 30.0, 2
    assert reconciler.once().groups == []  # the broker holds 2 messages for 2 queued groups
    waker.messages = 1  # one message lost: which one cannot be told, so both are sent
    assert reconciler.once().groups == ["a", "b"]
    assert waker.groups == [("a", "celery"), ("b", "gpu")]
    clock.now, waker.messages = 59.0, 0
    assert reconciler.once().groups == []  # 29 s since the last send
    clock.now, waker.messages = 60.0, None  # the broker cannot say: send
    assert reconciler.once().groups == ["a", "b"]
    with engine.begin() as conn:
        assert groups.claim_group(conn, "a")
    clock.now = 90.0
    assert reconciler.once().groups == ["b"]  # a running group is no longer waiting for a message


def test_queued_runs_and_groups_are_counted_together(engine):
    queued_group(engine, "g", "no-such-preset")
    with engine.begin() as conn:
        run_id = runs.create_run(conn, json.dumps({"name": "r"}), "r", None, None)
    waker, clock = Waker(messages=1), Clock()
    reconciler = Reconciler(engine, waker, POLICY, clock=clock)
    reconciler.once()
    clock.now = 30.0
    done = reconciler.once()  # 2 queued (a run and a group), 1 message waiting
    assert (done.runs, done.groups) == ([(run_id, 1)], ["g"])
    clock.now, waker.messages = 60.0, 2
    done = reconciler.once()
    assert (done.runs, done.groups) == ([], [])


def test_a_running_group_with_a_stale_heartbeat_fails_and_a_fresh_one_runs_on(engine):
    now = time.time()
    for group in ("dead", "alive"):
        queued_group(engine, group, "no-such-preset")
        with engine.begin() as conn:
            assert groups.claim_group(conn, group)
    with engine.begin() as conn:  # last heartbeat 61 s ago, one more than stale_after_s
        conn.execute(groups_table.update().where(groups_table.c.id == "dead").values(updated_at=now - 61))
        conn.execute(groups_table.update().where(groups_table.c.id == "alive").values(updated_at=now - 59))
    done = Reconciler(engine, Waker(), POLICY).once()
    assert (done.failed_groups, done.groups) == (["dead"], [])
    with engine.connect() as conn:
        dead, alive = groups.get_group(conn, "dead"), groups.get_group(conn, "alive")
    assert (dead.status, dead.message) == ("failed", "failed")
    assert dead.error == groups.HEARTBEAT_LOST.format(group="dead")
    assert "alignscope experiment --summarize dead" in dead.error
    assert alive.status == "running" and alive.error is None


def test_a_stale_run_is_still_requeued_and_sent_at_once(engine, run_id):
    with engine.begin() as conn:
        runs.set_checkpoint(conn, run_id, 1, "/ckpt")
        stale = {"heartbeat_at": time.time() - 61, "config": json.dumps({"name": "r"})}
        conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(**stale))
    waker = Waker(messages=5)
    done = Reconciler(engine, waker, POLICY).once()  # sent although the broker holds 5 messages
    assert done.runs == [(run_id, 2)] and waker.runs == [(run_id, 2)]
