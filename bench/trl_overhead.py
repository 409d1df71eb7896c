"""The cost of AlignScope inside a TRL run: seconds per optimizer step of TRL 1.16's DPOTrainer alone
against ``alignscope.trl.DPOTrainer`` recording every pair of every step (logging_steps=1, pair
records with texts, 3D diagnostics), and against the same with β-DPO. One process, one tiny
GPT-NeoX (the example's, CPU), the same data and seed. The variants alternate, in reversed order
every second round, for ``--rounds`` rounds of ``--steps`` steps. A round's figure for a variant is
the median of its per-step times: the time between two step ends (forward/backward, TRL's metrics,
AlignScope's gathers, and the log where AlignScope emits), leaving out the first ``--warmup`` steps.
Rows go to a real server when ``--url`` is given, else to an offline spool in a temporary folder
(the sender thread writes them to a file instead of a socket). Prints one JSON line:
``dpo_ratio`` and ``beta_dpo_ratio`` (target ≤ 1.05; no accumulation, so β-DPO's scope batch runs no
pre-pass), each the median over rounds of the round's TRL + AlignScope time over its TRL-alone time
(paired within a round, so the machine's drift cancels), and the same of the process's CPU time
(``*_cpu_ratio``: all threads, less sensitive to other processes on a shared machine, where
wall-time ratios of single rounds spread by ±50 %). With ``--grad-accum A`` > 1 two more variants
run with A micro-batches per step: TRL alone (``trl_accum``) and β-DPO scope batch, whose no-grad
scoring pass (one extra policy forward per micro-batch, docs/decisions/0041) is a deliberate cost,
reported as ``beta_dpo_batch_scope_ratio`` against ``trl_accum``, not against the target.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import trl
from transformers import TrainerCallback
from trl import DPOConfig

from alignscope.trl import BetaDPO, DPOTrainer, Logging

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import trl_dpo  # the example's tiny model and constructed pairs


class StepTimes(TrainerCallback):
    """Wall and process CPU time between consecutive step ends: one whole step, its log (where
    AlignScope emits) included; the CPU time counts every thread of the process (the sender's too)."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []
        self._last: tuple[float, float] | None = None

    def on_step_end(self, args, state, control, **kwargs) -> None:
        now = (time.perf_counter(), time.process_time())
        if self._last is not None:
            self.times.append((now[0] - self._last[0], now[1] - self._last[1]))
        self._last = now


ACCUMULATED = ("trl_accum", "beta_dpo_batch_scope")  # the variants that run with --grad-accum


def run(variant: str, options: argparse.Namespace, spool: str) -> list[tuple[float, float]]:
    accumulation = options.grad_accum if variant in ACCUMULATED else 1
    pairs = str(max(256, options.steps * options.batch_size * accumulation))  # one epoch
    example = trl_dpo.parse(["--pairs", pairs, "--batch-size", str(options.batch_size)])
    model, tokenizer = trl_dpo.model_and_tokenizer(example)
    config = DPOConfig(output_dir=tempfile.mkdtemp(prefix="bench-trl-"), max_steps=options.steps,
                       per_device_train_batch_size=options.batch_size, learning_rate=1e-3, logging_steps=1,
                       gradient_accumulation_steps=accumulation, save_strategy="no", report_to=[], seed=0,
                       use_cpu=True, max_length=128, disable_tqdm=True)  # fmt: skip
    common = {"model": model, "ref_model": copy.deepcopy(model).eval(), "args": config,
              "train_dataset": trl_dpo.dataset(example), "processing_class": tokenizer}  # fmt: skip
    if variant.startswith("trl"):
        trainer = trl.DPOTrainer(**common)
    else:
        logging = Logging(url=options.url, token=options.token, spool_dir=spool, name=f"bench-{variant}")
        beta_dpo = BetaDPO(scope="batch") if variant.startswith("beta_dpo") else None
        trainer = DPOTrainer(**common, alignscope=logging, beta_dpo=beta_dpo)
    times = StepTimes()
    trainer.add_callback(times)
    trainer.train()
    return times.times[options.warmup :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per micro-batch")
    parser.add_argument("--grad-accum", type=int, default=1,
                        help="> 1: also time TRL and β-DPO scope batch with this accumulation")  # fmt: skip
    parser.add_argument("--url", default=None)
    parser.add_argument("--token", default=os.environ.get("ALIGNSCOPE_API_TOKEN"))
    options = parser.parse_args()
    torch.set_num_threads(1)
    variants = ("trl", "dpo", "beta_dpo", *(ACCUMULATED if options.grad_accum > 1 else ()))
    wall: dict[str, list[float]] = {variant: [] for variant in variants}
    cpu: dict[str, list[float]] = {variant: [] for variant in variants}
    with tempfile.TemporaryDirectory() as spool:
        for round_ in range(options.rounds):
            order = variants if round_ % 2 == 0 else variants[::-1]  # drift cancels over pairs of rounds
            for variant in order:
                times = run(variant, options, spool)
                wall[variant].append(statistics.median(t for t, _ in times))
                cpu[variant].append(statistics.median(c for _, c in times))
                print(f"round {round_} {variant}: {wall[variant][-1] * 1e3:.1f} ms/step wall, "
                      f"{cpu[variant][-1] * 1e3:.1f} ms CPU", file=sys.stderr)  # fmt: skip

    def paired(measure: dict[str, list[float]], variant: str) -> list[float]:
        peer = "trl_accum" if variant in ACCUMULATED else "trl"
        return [m / t for m, t in zip(measure[variant], measure[peer], strict=True)]

    out = {"bench": "trl_overhead", "peer": f"trl.DPOTrainer {trl.__version__}", "rounds": options.rounds,
           "steps_per_round": options.steps - options.warmup - 1,
           "transport": "http" if options.url else "offline spool", "target_ratio": 1.05,
           "grad_accum": options.grad_accum}  # fmt: skip
    for variant in variants:
        out[f"{variant}_wall_s_per_step"] = statistics.median(wall[variant])
        out[f"{variant}_cpu_s_per_step"] = statistics.median(cpu[variant])
    for variant in (v for v in variants if not v.startswith("trl")):
        out[f"{variant}_ratio"] = statistics.median(paired(wall, variant))
        out[f"{variant}_cpu_ratio"] = statistics.median(paired(cpu, variant))
        out[f"{variant}_ratios"] = [round(r, 4) for r in paired(wall, variant)]
        out[f"{variant}_cpu_ratios"] = [round(r, 4) for r in paired(cpu, variant)]
    out["loadavg_1min"] = os.getloadavg()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
