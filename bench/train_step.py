"""Training-step benchmark: our engine against TRL's DPOTrainer, and the cost of our diagnostics.

Run from the repository root (see bench/README.md)::

    .venv/bin/python -m bench.train_step --model tiny
    .venv/bin/python -m bench.train_step --model smollm2
    python -m bench.train_step --device cuda --model smollm2     # or --model llama1b (random init)

Three measurements, each in its own spawned process (so peak RSS is that side's alone), interleaved
over ``--repeats`` rounds with the order rotated every round:

- ``ours_bare``: our engine (``worker.engine.loop.train``), plain DPO, no metric emission, no pair
  records (the 3D monitor runs only in emission);
- ``ours_full``: β-DPO with every diagnostic: metrics, 3D monitor and pair records at every step;
- ``trl``: TRL's DPOTrainer (``bench/_peer_trl.py``) with ``precompute_ref_log_probs=True``,
  ``bf16=False``, ``gradient_checkpointing=False`` on CPU; on CUDA (``--peer trl-best``, its default
  there) at its best settings: bf16 weights, padding-free and Liger kernels where they install and
  apply (``bench/_gpu.py``; the line's ``peer_settings`` says which were on).

All three use the same model and initial weights, the same pairs in the same order (ours unshuffled,
TRL's sequential sampler), batch, micro-batch, max length, AdamW, learning rate and schedule, and the
same torch thread count. Our side uses precomputed reference log-probs too. Seconds per optimizer step
are timed from the end of step ``warmup`` to the end of step ``warmup + steps`` (model loading,
tokenization and the reference precompute excluded); one extra step follows, so the engine's
emission at the last step stays out of the window. Each side's figure is the median over repeats;
peak RSS (``ru_maxrss`` of the child, loading included) the largest.

Progress goes to stderr; the last line on stdout is one JSON object:
``speedup_vs_trl = trl_s / ours_s``, ``diag_overhead = ours_full_s / ours_s``,
``rss_ratio_vs_trl = peak RSS of ours_bare / peak RSS of trl``; on CUDA also ``tokens_per_s`` (the
2B-row tokens of the average pair × batch / s per step, the same count for both sides),
``gpu_mem_ratio_vs_trl`` (peak CUDA memory of ours_bare / trl's) and the card's name.
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from backend.config_files import apply_overrides, load_preset, validate
from bench._memory import PeakMemory
from bench._train_plan import Plan, parse_plan
from contracts.config import MAX_STEPS_CAP, RunConfig

REPO = Path(__file__).resolve().parents[1]
HH_PATH = Path(
    os.environ.get(
        "ALIGNSCOPE_HH_PATH",
        REPO / "worker" / "engine" / "data" / "hh" / "hh-rlhf-harmless-base-test.jsonl.gz",
    )
)
VARIANTS = ("ours_bare", "ours_full", "trl")
TARGETS = {"speedup_vs_trl": {"tiny": 1.6, "smollm2": 1.4}, "diag_overhead": 1.05, "rss_ratio_vs_trl": 0.7}
CUDA_TARGETS = {"speedup_vs_trl": {"smollm2": 1.3, "llama1b": 1.3}, "gpu_mem_ratio_vs_trl": 1.0}


PRESETS = {"tiny": "tiny-dpo", "smollm2": "smollm2-hh-dpo", "pretrained": "smollm2-hh-dpo",
           "llama1b": "smollm2-hh-dpo"}  # fmt: skip


# --------------------------------------------------------------------------------------------- configs


def _data_overrides(plan: Plan) -> list[str]:
    margin = plan.pairs_needed // 4 + 8  # a few rows may be dropped by tokenization
    common = [
        "data.eval_fraction=0.0",
        "data.eval_path=null",
        "data.shuffle=false",
        f"data.max_length={plan.max_length}",
        f"data.max_prompt_length={plan.max_prompt_length}",
    ]
    if plan.data == "hh":
        return [*common, "data.source=file", f"data.path={HH_PATH}", "data.format=hh",
                f"data.max_rows={plan.pairs_needed + margin}"]  # fmt: skip
    return [*common, "data.source=constructed", "data.max_rows=null",
            f"data.constructed.num_pairs={plan.pairs_needed + margin}"]  # fmt: skip


def run_config(plan: Plan, variant: str) -> RunConfig:
    """The RunConfig of one variant: the model's DPO preset with the plan's shape applied."""
    full = variant == "ours_full"
    overrides = [
        *_data_overrides(plan),
        "reference.mode=precomputed",
        f"device={plan.device}",
        *(["model.source=pretrained", f"model.path={plan.model_dir}"] if plan.model_dir else []),
        "optim.optimizer=adamw",
        f"optim.batch_size={plan.batch}",
        f"optim.micro_batch_size={plan.micro_batch}",
        f"optim.max_steps={plan.total_steps}",
        "checkpoint_every=0",
        f"beta_dpo.enabled={str(full).lower()}",
        f"diagnostics.pair_records={str(full).lower()}",
        f"log_every={1 if full else MAX_STEPS_CAP}",
        f"name=bench-{variant}",
        *plan.ours_set,
    ]
    return validate(apply_overrides(load_preset(PRESETS[plan.model]), overrides))


# ---------------------------------------------------------------------------------------- measurement


def measure_ours(config: RunConfig, memory: PeakMemory) -> dict[str, Any]:
    """``worker.engine.loop.train`` to the end: the clock reading at the end of every step (``ends``).
    The clock is ``should_stop``, which the loop polls once per step right after the update."""
    from bench._gpu import synchronize
    from worker.engine.loop import train
    from worker.engine.sinks import NullSink

    ends: list[float] = []

    def should_stop() -> bool:
        if not ends:
            memory.first_step_done()
        synchronize()
        ends.append(time.perf_counter())
        return False

    summary = train(config, NullSink(), should_stop)
    if summary.status != "succeeded":
        raise RuntimeError(f"our run ended {summary.status}: {summary.error}")
    return {"ends": ends}


def window(ends: list[float], warmup: int, steps: int) -> dict[str, Any]:
    """From step-end clock readings: mean seconds per step over steps warmup+1 … warmup+steps
    (``step_s``) and each of those steps' duration (``durations``)."""
    if len(ends) < warmup + steps:
        raise RuntimeError(f"{len(ends)} steps ran, {warmup + steps} needed")
    timed = ends[warmup - 1 : warmup + steps]
    durations = [later - earlier for earlier, later in itertools.pairwise(timed)]
    return {"step_s": (timed[-1] - timed[0]) / steps, "durations": durations}


def _child(conn: Connection, variant: str, config: RunConfig, plan: Plan) -> None:
    """Spawned process body: measure one variant, send back its figures and peak RSS (MiB)."""
    os.dup2(2, 1)  # libraries' prints go to stderr; the parent owns stdout
    warnings.simplefilter("ignore", FutureWarning)
    try:
        import torch

        torch.set_num_threads(plan.threads)
        memory = PeakMemory()
        if variant == "trl":
            from bench._peer_trl import measure_trl

            result = measure_trl(config, memory.first_step_done, best=plan.trl_mode == "trl-best")
        else:
            result = measure_ours(config, memory)
        result.update(window(result.pop("ends"), plan.warmup, plan.steps))
        result.update(memory.report())
        result["threads_seen"] = torch.get_num_threads()
        result["card"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        conn.send(("ok", result))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def run_isolated(variant: str, config: RunConfig, plan: Plan) -> dict[str, Any]:
    """Runs ``_child`` in a fresh spawned interpreter and returns its result (RuntimeError if it failed)."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, variant, config, plan), name=f"bench-{variant}")
    process.start()
    sender.close()
    try:
        status, payload = receiver.recv()
    except EOFError:
        status, payload = "error", "the child exited without a result"
    process.join()
    if status != "ok":
        raise RuntimeError(f"{variant} failed (exit code {process.exitcode}):\n{payload}")
    return payload


def _child_environment(cache: Path, threads: int) -> None:
    """Environment the spawned children inherit: quiet, offline, caches in ``cache``."""
    os.environ.update(
        {
            "ALIGNSCOPE_CACHE_DIR": str(cache),
            "HF_DATASETS_CACHE": str(cache / "datasets"),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_VERBOSITY": "error",
            "TQDM_DISABLE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": str(threads),
        }
    )


def measure(plan: Plan) -> dict[str, list[dict[str, Any]]]:
    """Every variant once per repeat, the order rotated each repeat; results per variant."""
    configs = {variant: run_config(plan, variant) for variant in VARIANTS}
    results: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="alignscope-bench-") as tmp:
        cache = Path(tmp)
        _child_environment(cache, plan.threads)
        for repeat in range(plan.repeats):
            order = VARIANTS[repeat % 3 :] + VARIANTS[: repeat % 3]
            for variant in order:
                shutil.rmtree(cache / "reference", ignore_errors=True)  # precompute afresh, like TRL
                started = time.perf_counter()
                result = run_isolated(variant, configs[variant], plan)
                results[variant].append(result)
                wall = time.perf_counter() - started
                after = result["train_rss_mb"] or math.nan
                print(
                    f"[repeat {repeat + 1}/{plan.repeats}] {variant:9s} {result['step_s']:.4f} s/step  "
                    f"peak RSS {result['rss_mb']:.0f} MiB (after step 1: {after:.0f} MiB)  "
                    f"{result['threads_seen']} threads  ({wall:.0f} s wall)",
                    file=sys.stderr,
                    flush=True,
                )
    return results


# ------------------------------------------------------------------------------------------- report


def summarize(plan: Plan, results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The one-line JSON report (medians of seconds per step, largest peak RSS)."""
    seconds = {v: statistics.median(r["step_s"] for r in results[v]) for v in VARIANTS}
    typical = {v: statistics.median(d for r in results[v] for d in r["durations"]) for v in VARIANTS}
    rss = {v: max(r["rss_mb"] for r in results[v]) for v in VARIANTS}
    train_rss = {v: max((r["train_rss_mb"] or math.nan) for r in results[v]) for v in VARIANTS}
    peer = results["trl"][0]
    report = {
        "bench": "train_step",
        "model": plan.model,
        "ours_s": round(seconds["ours_bare"], 5),
        "trl_s": round(seconds["trl"], 5),
        "speedup_vs_trl": round(seconds["trl"] / seconds["ours_bare"], 3),
        "diag_overhead": round(seconds["ours_full"] / seconds["ours_bare"], 3),
        "rss_ratio_vs_trl": round(rss["ours_bare"] / rss["trl"], 3),
        "ours_full_s": round(seconds["ours_full"], 5),
        "speedup_full_vs_trl": round(seconds["trl"] / seconds["ours_full"], 3),
        "rss_mb": {v: round(rss[v], 1) for v in VARIANTS},
        "train_rss_ratio_vs_trl": round(train_rss["ours_bare"] / train_rss["trl"], 3),
        "train_rss_mb": {v: round(train_rss[v], 1) for v in VARIANTS},
        "peer": f"trl {peer['versions']['trl']}",
        "torch": peer["versions"]["torch"],
        "transformers": metadata.version("transformers"),
        "trl_tokens_per_our_token": round(peer["token_ratio"], 4),
        "pairs": peer["pairs"],
        "samples_s": {v: [round(r["step_s"], 5) for r in results[v]] for v in VARIANTS},
        "median_step_s": {v: round(typical[v], 5) for v in VARIANTS},
        "median_step_speedup_vs_trl": round(typical["trl"] / typical["ours_bare"], 3),
        "median_step_diag_overhead": round(typical["ours_full"] / typical["ours_bare"], 3),
        **asdict(plan),
    }
    if plan.device == "cuda":
        return {**report, **cuda_figures(plan, results, seconds)}
    speed_target = TARGETS["speedup_vs_trl"].get(plan.model)
    report["targets"] = {
        "speedup_vs_trl": speed_target,
        "diag_overhead": TARGETS["diag_overhead"],
        "rss_ratio_vs_trl": TARGETS["rss_ratio_vs_trl"],
    }
    report["meets_targets"] = {
        "speedup_vs_trl": speed_target is not None and report["speedup_vs_trl"] >= speed_target,
        "diag_overhead": report["diag_overhead"] <= TARGETS["diag_overhead"],
        "rss_ratio_vs_trl": report["rss_ratio_vs_trl"] <= TARGETS["rss_ratio_vs_trl"],
    }
    return report


def cuda_figures(plan: Plan, results: dict[str, list[dict[str, Any]]], seconds: dict[str, float]) -> dict:
    """Tokens/s, peak GPU memory, the card, TRL's settings and the CUDA targets (bench/_gpu.py)."""
    peer = results["trl"][0]
    tokens = {v: peer["tokens_per_pair"] * plan.batch / seconds[v] for v in VARIANTS}
    gpu = {v: max(r["gpu_mb"] or math.nan for r in results[v]) for v in VARIANTS}
    gpu_train = {v: max(r["gpu_train_mb"] or math.nan for r in results[v]) for v in VARIANTS}
    figures = {
        "card": peer["card"],
        "peer_settings": peer["peer_settings"],
        "tokens_per_s": {v: round(tokens[v]) for v in VARIANTS},
        "tokens_ratio_vs_trl": round(tokens["ours_bare"] / tokens["trl"], 3),
        "gpu_mb": {v: round(gpu[v], 1) for v in VARIANTS},
        "gpu_train_mb": {v: round(gpu_train[v], 1) for v in VARIANTS},
        "gpu_mem_ratio_vs_trl": round(gpu["ours_bare"] / gpu["trl"], 3),
    }
    target = CUDA_TARGETS["speedup_vs_trl"].get(plan.model)
    figures["targets"] = {**CUDA_TARGETS, "speedup_vs_trl": target, "diag_overhead": TARGETS["diag_overhead"]}
    figures["meets_targets"] = {
        "speedup_vs_trl": target is not None and figures["tokens_ratio_vs_trl"] >= target,
        "gpu_mem_ratio_vs_trl": figures["gpu_mem_ratio_vs_trl"] <= CUDA_TARGETS["gpu_mem_ratio_vs_trl"],
        "diag_overhead": seconds["ours_full"] / seconds["ours_bare"] <= TARGETS["diag_overhead"],
    }
    return figures


def main(argv: list[str] | None = None) -> None:
    plan = parse_plan(argv, __doc__.split("\n\n")[0])
    if plan.model == "llama1b":
        from bench._gpu import parameters_b, random_llama, smollm2_tokenizer_dir

        folder = random_llama(Path(plan.model_dir or ""), smollm2_tokenizer_dir())
        print(f"random Llama: {parameters_b(folder):.2f} B parameters in {folder}", file=sys.stderr)
    print(f"bench train_step: {plan}", file=sys.stderr, flush=True)
    load_before = os.getloadavg()[0]
    report = summarize(plan, measure(plan))
    report["loadavg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    line = json.dumps(report, separators=(",", ":"))
    json.loads(line)
    print(line, flush=True)


if __name__ == "__main__":
    main()
