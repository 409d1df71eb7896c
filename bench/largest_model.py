"""The largest model each side trains on one GPU with full diagnostics: a ladder of random-init Llama
shapes, climbed by our engine (full fine-tune under FSDP2 with activation checkpointing; LoRA) and by
TRL's DPOTrainer at its best settings (full fine-tune in bf16 with gradient checkpointing; LoRA
through peft), one child process per rung, stopping at a side's first failure (out of memory)::

    python -m bench.largest_model --folder /tmp/ladder            # on a GPU machine
    python -m bench.largest_model --folder /tmp/ladder --quick    # tiny shapes, any machine

Each rung trains ``--steps`` optimizer steps of 8 HH pairs (max length 512) after the reference is
precomputed; ours runs β-DPO with every metric and pair record. One JSON line per rung (side, shape,
billions of parameters, ok or the error's last line, peak GPU memory), then one summary line with the
largest rung each side trained. A rung's model is written once (bf16 safetensors) and reused.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from backend.config_files import apply_overrides, load_preset, validate
from bench._gpu import LLAMA_1B, parameters_b, peak_mb, random_llama, smollm2_tokenizer_dir
from bench.train_step import HH_PATH, PRESETS

LADDER = {
    "1B": LLAMA_1B,
    "3B": {**LLAMA_1B, "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28,
           "num_attention_heads": 24},
    "8B": {**LLAMA_1B, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
           "num_attention_heads": 32, "tie_word_embeddings": False},
}  # fmt: skip
QUICK = {"xs": {**LLAMA_1B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2}}  # fmt: skip
SIDES = {
    "ours_full": ["distributed.strategy=fsdp", "model.gradient_checkpointing=true", "beta_dpo.enabled=true"],
    "ours_lora": ["model.lora.r=16", "model.lora.export=none", "beta_dpo.enabled=true"],
    "trl_full": [],
    "trl_lora": [],
}


def rung_config(side: str, folder: Path, device: str, steps: int) -> Any:
    overrides = [
        "model.source=pretrained", f"model.path={folder}", f"device={device}", "data.source=file",
        f"data.path={HH_PATH}", "data.format=hh", "data.max_rows=64", "data.max_length=512",
        "data.max_prompt_length=256", "data.eval_fraction=0.0", "data.eval_path=null",
        "reference.mode=precomputed", "optim.batch_size=8", "optim.micro_batch_size=4",
        f"optim.max_steps={steps}", "checkpoint_every=0", "log_every=1", "diagnostics.pair_records=true",
        *SIDES[side],
    ]  # fmt: skip
    return validate(apply_overrides(load_preset(PRESETS["smollm2"]), overrides))


def _rung(conn: Any, side: str, folder: Path, device: str, steps: int) -> None:
    """Child: one side on one rung; sends ("ok" | error text, peak GPU MiB)."""
    os.dup2(2, 1)  # TRL prints its metrics; the parent owns stdout
    try:
        config = rung_config(side, folder, device, steps)
        if side.startswith("ours"):
            from worker.engine.loop import train
            from worker.engine.sinks import NullSink

            summary = train(config, NullSink())
            status = "ok" if summary.status == "succeeded" else f"{summary.status}: {summary.error}"
        else:
            from bench._peer_trl import measure_trl

            measure_trl(config, lambda: None, best=True, lora=side == "trl_lora",
                        checkpointing=side == "trl_full")  # fmt: skip
            status = "ok"
    except BaseException:
        status = traceback.format_exc().strip().splitlines()[-1][:300]
    conn.send((status, peak_mb()))
    conn.close()


def climb(ladder: dict[str, dict], root: Path, device: str, steps: int) -> list[dict[str, Any]]:
    """Every side up the ladder until its first failure; one record per rung tried."""
    context = multiprocessing.get_context("spawn")
    records: list[dict[str, Any]] = []
    failed: set[str] = set()
    for name, shape in ladder.items():
        folder = random_llama(root / name, smollm2_tokenizer_dir(), shape)
        size = round(parameters_b(folder), 3)
        for side in SIDES:
            if side in failed:
                continue
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(target=_rung, args=(sender, side, folder, device, steps))
            started = time.perf_counter()
            child.start()
            sender.close()
            try:
                status, peak = receiver.recv()
            except EOFError:
                status, peak = f"the child died (exit code {child.exitcode})", None
            child.join()
            if status != "ok":
                failed.add(side)
            record = {"bench": "largest_model", "side": side, "rung": name, "params_b": size,
                      "status": status, "gpu_peak_mb": peak and round(peak),
                      "wall_s": round(time.perf_counter() - started, 1)}  # fmt: skip
            print(json.dumps(record), flush=True)
            records.append(record)
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", required=True, help="where the ladder's models are written (reused)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one tiny rung (a smoke run)")
    args = parser.parse_args(argv)
    records = climb(QUICK if args.quick else LADDER, Path(args.folder), args.device, args.steps)
    largest = {side: max((r["params_b"] for r in records if r["side"] == side and r["status"] == "ok"),
                         default=None) for side in SIDES}  # fmt: skip
    print(json.dumps({"bench": "largest_model", "largest_params_b": largest}), file=sys.stdout, flush=True)


if __name__ == "__main__":
    main()
