"""The cost of AlignScope inside a TRL run: seconds per optimizer step of TRL 1.16's DPOTrainer alone
against ``alignscope.trl.DPOTrainer`` recording every pair of every step (logging_steps=1, pair
records with texts, 3D diagnostics), and against the same with β-DPO. One process, one tiny
GPT-NeoX (the example's, CPU), the same data and seed; the variants alternate for ``--rounds``
rounds of ``--steps`` steps, and each variant's figure is the median of its per-step times (the
time between two step ends: forward/backward, TRL's metrics, AlignScope's gathers and the log where
AlignScope emits; the first ``--warmup`` steps of each round are left out). Rows go to a real
server when ``--url`` is given, else to an offline spool in a temporary folder (the sender thread
writes them to a file instead of a socket). Prints one JSON line: ``dpo_ratio`` (target ≤ 1.05)
and ``beta_dpo_ratio``, each TRL + AlignScope over TRL alone.
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
    """The time between consecutive step ends: one whole step, its log (where AlignScope emits) included."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last: float | None = None

    def on_step_end(self, args, state, control, **kwargs) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


def run(variant: str, options: argparse.Namespace, spool: str) -> list[float]:
    example = trl_dpo.parse(["--pairs", "256", "--batch-size", str(options.batch_size)])
    model, tokenizer = trl_dpo.model_and_tokenizer(example)
    config = DPOConfig(output_dir=tempfile.mkdtemp(prefix="bench-trl-"), max_steps=options.steps,
                       per_device_train_batch_size=options.batch_size, learning_rate=1e-3, logging_steps=1,
                       save_strategy="no", report_to=[], seed=0, use_cpu=True, max_length=128,
                       disable_tqdm=True)  # fmt: skip
    common = {"model": model, "ref_model": copy.deepcopy(model).eval(), "args": config,
              "train_dataset": trl_dpo.dataset(example), "processing_class": tokenizer}  # fmt: skip
    if variant == "trl":
        trainer = trl.DPOTrainer(**common)
    else:
        logging = Logging(url=options.url, token=options.token, spool_dir=spool, name=f"bench-{variant}")
        beta_dpo = BetaDPO() if variant == "beta_dpo" else None
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
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--url", default=None)
    parser.add_argument("--token", default=os.environ.get("ALIGNSCOPE_API_TOKEN"))
    options = parser.parse_args()
    torch.set_num_threads(1)
    samples: dict[str, list[float]] = {"trl": [], "dpo": [], "beta_dpo": []}
    with tempfile.TemporaryDirectory() as spool:
        for round_ in range(options.rounds):
            for variant in samples:
                samples[variant] += run(variant, options, spool)
                print(f"round {round_} {variant}: {statistics.median(samples[variant]) * 1e3:.1f} ms/step",
                      file=sys.stderr)  # fmt: skip
    median = {variant: statistics.median(times) for variant, times in samples.items()}
    print(json.dumps({
        "bench": "trl_overhead", "peer": f"trl.DPOTrainer {trl.__version__}",
        "steps_per_variant": len(samples["trl"]),
        "trl_s_per_step": median["trl"], "alignscope_s_per_step": median["dpo"],
        "alignscope_beta_dpo_s_per_step": median["beta_dpo"],
        "dpo_ratio": median["dpo"] / median["trl"], "beta_dpo_ratio": median["beta_dpo"] / median["trl"],
        "target_ratio": 1.05, "transport": "http" if options.url else "offline spool",
        "loadavg_1min": os.getloadavg()[0],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
