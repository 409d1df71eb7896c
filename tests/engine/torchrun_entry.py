"""Run under torchrun by the multi-process tests: ``torchrun … torchrun_entry.py SPEC.json OUT_DIR``.

Joins one gloo process group, trains every job of SPEC in order (the engine leaves a group it did not
create alone), and writes ``OUT_DIR/rank<R>.json``: per job its status, steps, strategy, the wrapper
class of the policy and every metric point rank 0 emitted (``key@step`` → value).
A job: ``{"name", "preset", "overrides": [...], "checkpoint": path|null, "stop_after": k|null}``;
with ``stop_after`` the job stops after k steps and is then resumed from ``checkpoint`` to the end.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from tests.engine.test_loop import small
from worker.engine.loop import Trainer, train
from worker.engine.sinks import ListSink

SKIPPED = ("train/examples_per_second",)


def points(sinks: list[ListSink]) -> dict[str, float]:
    return {f"{p.key}@{p.step}": p.value for s in sinks for p in s.point_list if p.key not in SKIPPED}


def run_job(job: dict) -> dict:
    config = small(job["preset"], *job["overrides"])
    checkpoint = Path(job["checkpoint"]) if job.get("checkpoint") else None
    seen: dict[str, type] = {}
    original = Trainer.__init__

    def spy(self: Trainer, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        seen["wrapper"] = type(self.parallel.scorer)
        seen["strategy"] = self.parallel.strategy  # type: ignore[assignment]

    Trainer.__init__ = spy  # type: ignore[method-assign]
    try:
        sinks = [ListSink()]
        stop = job.get("stop_after")
        calls: list[int] = []

        def should_stop() -> bool:
            calls.append(1)
            return stop is not None and len(calls) == stop

        summary = train(config, sinks[0], should_stop=should_stop, checkpoint_dir=checkpoint)
        statuses = [summary.status]
        if stop is not None:
            sinks.append(ListSink())
            summary = train(config, sinks[1], checkpoint_dir=checkpoint)
            statuses.append(summary.status)
    finally:
        Trainer.__init__ = original  # type: ignore[method-assign]
    return {
        "statuses": statuses,
        "steps": summary.steps,
        "strategy": seen["strategy"],
        "wrapper": seen["wrapper"].__name__,
        "points": points(sinks),
        "pairs": sum(len(s.pair_records) for s in sinks),
        "export": summary.export,
    }


def main() -> None:
    spec, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    results = {job["name"]: run_job(job) for job in spec["jobs"]}
    rank = dist.get_rank()
    dist.destroy_process_group()
    (out / f"rank{rank}.json").write_text(json.dumps(results))
    print(f"rank {rank} of {os.environ['WORLD_SIZE']}: {len(results)} jobs", file=sys.stderr)


if __name__ == "__main__":
    main()
