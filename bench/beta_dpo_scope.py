"""Cost of β-DPO's batch-scope calibration (docs/decisions/0060): seconds per optimizer step of
``tiny-beta-dpo`` with gradient accumulation (batch 32 in micro-batches of 8), ``beta_dpo.scope:
batch`` (a no-grad scoring pass over the step's micro-batches, then one calibration) against the
named peer ``scope: micro_batch`` (the authors' per-micro-batch calibration, no extra pass), in
interleaved repeats on the same machine. Prints one JSON line: the medians and their ratio.

    .venv/bin/python -m bench.beta_dpo_scope             # 5 interleaved pairs of 40 steps
    .venv/bin/python -m bench.beta_dpo_scope --quick     # 1 pair of 4 steps
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from backend.config_files import apply_overrides, load_preset, validate
from contracts import metric_keys as mk
from worker.engine.loop import train
from worker.engine.sinks import ListSink


def seconds_per_step(scope: str, steps: int) -> float:
    """Median wall time of steps 2…steps+1 (the loop's own per-step timing, train/examples_per_second;
    model loading and the first step are left out)."""
    config = validate(apply_overrides(load_preset("tiny-beta-dpo"), [
        f"beta_dpo.scope={scope}", "optim.batch_size=32", "optim.micro_batch_size=8",
        f"optim.max_steps={steps + 1}", "checkpoint_every=0", "diagnostics.pair_records=false",
        "log_every=1", "data.eval_fraction=0", "device=cpu",
    ]))  # fmt: skip
    sink = ListSink()
    train(config, sink)
    rates = [value for step, value in sink.series(mk.TRAIN_EXAMPLES_PER_SECOND) if step > 1]
    return statistics.median(32 / rate for rate in rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    pairs, steps = (1, 4) if args.quick else (5, 40)
    samples: dict[str, list[float]] = {"batch": [], "micro_batch": []}
    load_before = os.getloadavg()[0]
    for repeat in range(pairs):
        for scope in ("micro_batch", "batch") if repeat % 2 == 0 else ("batch", "micro_batch"):
            samples[scope].append(seconds_per_step(scope, steps))
            print(f"{scope}: {samples[scope][-1]:.3f} s/step", file=sys.stderr)
    batch, peer = statistics.median(samples["batch"]), statistics.median(samples["micro_batch"])
    print(json.dumps({"bench": "beta_dpo_scope", "s_per_step_batch": batch, "s_per_step_micro_batch": peer,
                      "cost_ratio": batch / peer, "samples": samples,
                      "loadavg_1min": [load_before, os.getloadavg()[0]]}))  # fmt: skip


if __name__ == "__main__":
    main()
