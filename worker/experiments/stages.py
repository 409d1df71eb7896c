"""The stages an experiment preset runs before its runs (``backend.experiment_spec``): an SFT warm-up
(cached by its spec under ``<data dir>/experiments/cache``), a second weaker model, a reward model
(recorded as a run of the group), on/off-policy scenario rows. Imports torch: the experiment command
loads this module only when it trains."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from backend.config_files import ConfigError, apply_overrides, validate
from backend.experiment_spec import ExperimentSpec, Warmup, merge, substitute
from contracts.pairs import PreferenceRow
from worker.engine.data.pairs import load_pairs
from worker.engine.evaluation.win_rates import build_judge
from worker.engine.model.loading import load_policy
from worker.experiments.scenarios import SamplingSpec, build_scenarios, write_jsonl
from worker.experiments.sft_warmup import sft_warmup
from worker.jobs.in_process import reward_model_job, run_in_process


def run_stages(
    spec: ExperimentSpec,
    quick: bool,
    engine: Engine,
    group: str,
    folder: Path,
    data_dir: Path,
    say: Callable[[str], None],
) -> dict[str, str]:
    """Runs the spec's stages (``say`` announces each); returns the placeholder values."""
    places: dict[str, str] = {}
    cache = data_dir / "experiments" / "cache"
    quick_steps = spec.quick.warmup_steps if quick else None
    if spec.warmup is not None:
        steps = quick_steps or spec.warmup.steps
        say(f"warm-up: SFT of the base model, {steps} steps")
        places["{warmup}"] = str(_warmup(spec.warmup, steps, cache))
    if spec.reward_model is not None:
        say("training the reward model")
        data = substitute(spec.reward_model, places)
        places["{reward_model}"] = _reward_model(spec, data, quick, engine, group, folder)
    if spec.scenarios is not None:
        if spec.warmup is None:
            raise ConfigError("scenarios need a warmup model (the policy whose samples are ranked)")
        other = None
        if spec.other_model is not None:  # --quick: a quarter of the quick warm-up's steps
            steps = max(1, quick_steps // 4) if quick_steps else spec.other_model.steps
            say(f"second model: SFT, {steps} steps")
            other_dir = _warmup(spec.other_model, steps, cache)
            other = load_policy(
                validate({"model": {"source": "pretrained", "path": str(other_dir)}}).model, 0
            )
        say("sampling and ranking the on/off-policy scenario pairs")
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
    out = folder / "reward-model"
    job = reward_model_job(config, lambda run_id: out)
    run_id, summary = run_in_process(engine, config, job, preset=f"experiment:{spec.name}")
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
