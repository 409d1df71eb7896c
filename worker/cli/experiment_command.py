"""``alignscope experiment NAME [--quick]``: run an experiment preset's stages and runs in this process,
one after another, each run recorded in the store under one group name, then print the summary
table (and write it, with any figure, to ``<data dir>/experiments/<group>/``).

Stages (experiment_spec.py) come first: an SFT warm-up (cached by its spec under
``<data dir>/experiments/cache``), a second weaker model, a reward model (recorded as a run of the
group), on/off-policy scenario rows. ``alignscope experiment --list`` names the presets.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from backend.config_files import ConfigError, apply_overrides, validate
from backend.settings import get_settings
from backend.storage import runs
from backend.storage.db import init_db
from contracts.config import RunConfig
from contracts.pairs import PreferenceRow
from worker.cli.experiment_spec import (
    ExperimentSpec,
    Warmup,
    list_experiments,
    load_experiment,
    merge,
    planned_runs,
    substitute,
)
from worker.cli.experiment_summary import RunResult, write_summary
from worker.db_sink import DbSink
from worker.engine.data import load_pairs
from worker.engine.evaluation import build_judge
from worker.engine.models import load_policy
from worker.engine.reward_model import train_reward_model
from worker.engine.scenarios import SamplingSpec, build_scenarios, write_jsonl
from worker.engine.sft import sft_warmup
from worker.trainer import execute


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "experiment", help="run an experiment preset (a group of runs) in this process"
    )
    parser.add_argument("name", nargs="?", help="a preset in presets/experiments/ or a YAML file")
    parser.add_argument("--quick", action="store_true", help="the preset's small version (minutes on a CPU)")
    parser.add_argument("--seeds", type=lambda text: [int(x) for x in text.split(",")], metavar="0,1,2",
                        help="run every configuration with these seeds instead of the preset's")  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the experiment presets")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        for name in list_experiments():
            spec = load_experiment(name)
            print(f"{name:20}  {spec.title} ({spec.runtime_note or 'no runtime note'})")
        return 0
    try:
        spec = load_experiment(args.name)
    except ConfigError as exc:
        print(f"invalid experiment:\n{exc}", file=sys.stderr)
        return 2
    settings = get_settings()
    engine = init_db(settings.database_url)
    group = f"{spec.name}{'-quick' if args.quick else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder = Path(settings.data_dir) / "experiments" / group
    folder.mkdir(parents=True, exist_ok=True)
    print(f"experiment {spec.name} → group {group} ({settings.database_url})", file=sys.stderr)
    try:
        plan = planned_runs(spec, args.quick, args.seeds)
        for label, column, seed, data in plan:  # fail fast, before the stages
            _config(spec, group, label, column, seed, data)
        places = _stages(spec, args.quick, engine, group, folder, Path(settings.data_dir))
        configs = [
            (label, column, seed, _config(spec, group, label, column, seed, substitute(data, places)))
            for label, column, seed, data in plan
        ]
    except (ConfigError, ValueError) as exc:
        print(f"experiment {spec.name} cannot start:\n{exc}", file=sys.stderr)
        return 2
    results = []
    for index, (label, column, seed, config) in enumerate(configs, start=1):
        print(f"[{index}/{len(configs)}] {config.name}", file=sys.stderr)
        results.append(_launch(engine, label, column, seed, config))
        if results[-1].status == "stopped":  # Ctrl-C: the run checkpointed; summarize what ran
            print("experiment stopped; the summary covers the runs so far", file=sys.stderr)
            break
    text = write_summary(spec, group, results, engine, folder, args.quick)
    print(text)
    failed = [r for r in results if r.status != "succeeded"]
    return 1 if failed else 0


def _config(
    spec: ExperimentSpec, group: str, label: str, column: str, seed: int, data: dict[str, Any]
) -> RunConfig:
    name = "/".join(part for part in (spec.name, label, column, f"seed{seed}") if part)
    try:
        return validate({**data, "name": name, "group": group, "preset": f"experiment:{spec.name}"})
    except ConfigError as exc:
        raise ConfigError(f"run '{name}':\n{exc}") from exc


def _launch(engine: Engine, label: str, column: str, seed: int, config: RunConfig) -> RunResult:
    with engine.begin() as conn:
        run_id = runs.create_run(conn, config.model_dump_json(), config.name, config.preset, config.group)
        runs.claim_run(conn, run_id, 1)
    started = time.perf_counter()
    summary = execute(engine, run_id, 1, console=True)
    seconds = time.perf_counter() - started
    print(
        f"    {summary.status} after {summary.steps} steps in {seconds:.0f} s (run {run_id})", file=sys.stderr
    )
    if summary.error:
        print(summary.error, file=sys.stderr)
    return RunResult(run_id, label, column, seed, summary.status, seconds)


# ------------------------------------------------------------------------------------------- stages


def _stages(
    spec: ExperimentSpec, quick: bool, engine: Engine, group: str, folder: Path, data_dir: Path
) -> dict[str, str]:
    """Runs the spec's stages; returns the placeholder values."""
    places: dict[str, str] = {}
    cache = data_dir / "experiments" / "cache"
    quick_steps = spec.quick.warmup_steps if quick else None
    if spec.warmup is not None:
        steps = quick_steps or spec.warmup.steps
        places["{warmup}"] = str(_warmup(spec.warmup, steps, cache))
    if spec.reward_model is not None:
        data = substitute(spec.reward_model, places)
        places["{reward_model}"] = _reward_model(spec, data, quick, engine, group, folder)
    if spec.scenarios is not None:
        if spec.warmup is None:
            raise ConfigError("scenarios need a warmup model (the policy whose samples are ranked)")
        other = None
        if spec.other_model is not None:  # --quick: a quarter of the quick warm-up's steps
            steps = max(1, quick_steps // 4) if quick_steps else spec.other_model.steps
            other_dir = _warmup(spec.other_model, steps, cache)
            other = load_policy(
                validate({"model": {"source": "pretrained", "path": str(other_dir)}}).model, 0
            )
        places.update(_scenario_files(spec, places["{warmup}"], other, folder))
    return places


def _warmup(warmup: Warmup, steps: int, cache: Path) -> Path:
    """The SFT model of ``warmup`` after ``steps`` steps, trained once and cached by its spec."""
    key = json.dumps({**warmup.model_dump(), "steps": steps}, sort_keys=True, default=str)
    out = cache / f"sft-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if (out / "config.json").is_file():
        print(f"warm-up model (cached): {out}", file=sys.stderr)
        return out
    config = validate({"model": warmup.model, "data": warmup.data, "seed": warmup.seed})
    started = time.perf_counter()
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    sft_warmup(config, staging, steps, warmup.lr, warmup.batch_size)
    staging.rename(out)  # a crash mid-save never leaves a cached half model
    seconds = time.perf_counter() - started
    print(f"warm-up model: {steps} SFT steps in {seconds:.0f} s → {out}", file=sys.stderr)
    return out


def _reward_model(
    spec: ExperimentSpec, data: dict[str, Any], quick: bool, engine: Engine, group: str, folder: Path
) -> str:
    overrides = [o for o in spec.quick.overrides if o.startswith("optim.")] if quick else []
    config = validate(
        {**apply_overrides(data, overrides), "name": f"{spec.name}/reward model", "group": group}
    )
    with engine.begin() as conn:
        run_id = runs.create_run(
            conn, config.model_dump_json(), config.name, f"experiment:{spec.name}", group
        )
        runs.claim_run(conn, run_id, 1)
    sink = DbSink(engine, run_id, 1, total_steps=config.optim.max_steps)
    out = folder / "reward-model"
    summary = train_reward_model(config, sink, out)
    sink.close()
    with engine.begin() as conn:
        runs.finish_run(conn, run_id, 1, summary.status)
    accuracy = summary.metrics.get("rm/eval/accuracy", float("nan"))
    print(
        f"reward model: {summary.steps} steps, held-out accuracy {accuracy:.3f} (run {run_id}) → {out}",
        file=sys.stderr,
    )
    return str(out)


def _scenario_files(spec: ExperimentSpec, policy_dir: str, other: Any, folder: Path) -> dict[str, str]:
    stage = spec.scenarios
    assert stage is not None
    config = validate(merge({"model": {"source": "pretrained", "path": policy_dir}}, {"data": stage.data}))
    policy, tokenizer = load_policy(config.model, config.seed)
    items = load_pairs(config.data, tokenizer).train
    judge = build_judge(validate(spec.base).evaluation.judge)
    sampling = SamplingSpec(stage.samples_per_prompt, stage.temperature, stage.max_new_tokens, config.seed)
    data = build_scenarios(items, policy, tokenizer, judge, sampling, other)
    held_out = validate({"data": stage.eval_data}).data
    rows = [PreferenceRow(p.prompt_text, p.chosen_text, p.rejected_text, i + 1, "held-out", "standard")
            for i, p in enumerate(load_pairs(held_out, tokenizer).train)]  # fmt: skip
    places = {"{scenario:eval}": str(write_jsonl(rows, folder / "scenario-eval.jsonl"))}
    for name, rows in data.rows.items():
        path = write_jsonl(rows, folder / f"scenario-{name}.jsonl")
        print(
            f"scenario {name}: {len(rows)} rows ({data.dropped[name]} prompts dropped) → {path}",
            file=sys.stderr,
        )
        places[f"{{scenario:{name}}}"] = str(path)
    return places
