"""bench.train_step's plan: what one run measures (model, data, steps, batch sizes, device, peer),
with each model's defaults, the --quick sizes, and the command line that picks them."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Plan:
    """What one bench run measures. batch: pairs per optimizer step; micro_batch: pairs per forward."""

    model: str
    data: str
    steps: int
    warmup: int
    repeats: int
    batch: int
    micro_batch: int
    max_length: int
    max_prompt_length: int
    threads: int
    device: str = "cpu"
    model_dir: str | None = None
    ours_set: tuple[str, ...] = ()  # extra dotted overrides for our two variants (e.g. memory savers)
    trl_mode: str = "trl"  # "trl-best": TRL's fastest settings on the device (bench/_gpu.py)

    @property
    def total_steps(self) -> int:
        """Warm-up + timed steps + one trailing step (keeps the last-step emission out of the window)."""
        return self.warmup + self.steps + 1

    @property
    def pairs_needed(self) -> int:
        return self.total_steps * self.batch


DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"data": "constructed", "steps": 20, "warmup": 3, "repeats": 3, "batch": 16, "micro_batch": 8,
             "max_length": 64},
    "pretrained": {"data": "hh", "steps": 10, "warmup": 3, "repeats": 2, "batch": 8, "micro_batch": 8,
                   "max_length": 256},
    "smollm2": {"data": "hh", "steps": 3, "warmup": 1, "repeats": 1, "batch": 4, "micro_batch": 4,
                "max_length": 128},
    "llama1b": {"data": "hh", "steps": 8, "warmup": 2, "repeats": 2, "batch": 16, "micro_batch": 8,
                "max_length": 512},
}  # fmt: skip
CUDA_DEFAULTS: dict[str, dict[str, Any]] = {  # HH pairs at their real length mix (few cut at 512)
    "smollm2": {"steps": 10, "warmup": 3, "repeats": 2, "batch": 16, "micro_batch": 8, "max_length": 512},
}  # fmt: skip
QUICK: dict[str, Any] = {
    "steps": 2, "warmup": 1, "repeats": 1, "batch": 4, "micro_batch": 4, "max_length": 32
}  # fmt: skip


def parse_plan(argv: list[str] | None = None, description: str = "") -> Plan:
    """The Plan from the command line: model defaults, then --quick, then explicit options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", choices=sorted(DEFAULTS), default="tiny")
    parser.add_argument(
        "--data", choices=("constructed", "hh"), help="default: constructed (tiny), hh (smollm2)"
    )
    parser.add_argument("--steps", type=int, help="timed optimizer steps per measurement")
    parser.add_argument("--warmup", type=int, help="untimed optimizer steps before them (at least 1)")
    parser.add_argument("--repeats", type=int, help="interleaved rounds of the three measurements")
    parser.add_argument("--batch", type=int, help="pairs per optimizer step")
    parser.add_argument("--micro-batch", type=int, help="pairs per forward (default: model's, or the batch)")
    parser.add_argument("--max-length", type=int, help="tokens per prompt+response")
    parser.add_argument("--max-prompt-length", type=int, help="default: half the max length")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads")
    parser.add_argument("--quick", action="store_true", help="a very small smoke run")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: both sides train in bf16 autocast on the GPU")  # fmt: skip
    parser.add_argument("--model-dir", help="pretrained: a local model folder (safetensors); "
                        "llama1b: where the random model is made (kept for reruns)")  # fmt: skip
    parser.add_argument("--set", dest="ours_set", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override, ours only: model.gradient_checkpointing=false")  # fmt: skip
    parser.add_argument("--peer", choices=("trl", "trl-best"),
                        help="TRL set like ours (trl, CPU default) or its fastest (trl-best)")  # fmt: skip
    args = parser.parse_args(argv)
    cuda = CUDA_DEFAULTS.get(args.model, {}) if args.device == "cuda" else {}
    values = {**DEFAULTS[args.model], **cuda, **(QUICK if args.quick else {})}
    for key in ("data", "steps", "warmup", "repeats", "batch", "micro_batch", "max_length"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if values["batch"] % values["micro_batch"] and args.micro_batch is None:
        values["micro_batch"] = values["batch"]
    values["max_prompt_length"] = args.max_prompt_length or values["max_length"] // 2
    if args.model in ("pretrained", "llama1b") and not args.model_dir:
        parser.error(f"--model {args.model} needs --model-dir (llama1b: where the random model is made)")
    peer = args.peer or ("trl-best" if args.device == "cuda" else "trl")
    plan = Plan(
        model=args.model, threads=args.threads, device=args.device, model_dir=args.model_dir,
        ours_set=tuple(args.ours_set), trl_mode=peer, **values,
    )  # fmt: skip
    if plan.warmup < 1 or plan.steps < 1 or plan.repeats < 1:
        parser.error("--warmup, --steps and --repeats must be at least 1")
    if plan.batch % plan.micro_batch:
        parser.error("--batch must be a multiple of --micro-batch")
    return plan
