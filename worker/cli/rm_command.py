"""``alignscope train-rm CONFIG [--set k=v ...] [--out DIR]``: train a Bradley–Terry reward model on
a preference dataset (the config's ``model``, ``data``, ``optim``, ``seed``), recorded in the store as
a run (rm/loss, rm/accuracy, rm/margin) next to DPO runs on the same data, and saved as a
safetensors directory usable by the reward-model judge (``evaluation.judge.kind: reward_model``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.config_files import ConfigError, load_config
from backend.settings import get_settings
from backend.storage.db import init_db
from contracts.pairs import DatasetError
from worker.jobs.in_process import reward_model_job, run_in_process


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train-rm", help="train a Bradley–Terry reward model (preset name or YAML file)"
    )
    parser.add_argument("config", help="a preset name (see `alignscope presets`) or a YAML file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field by its dotted path, e.g. --set optim.max_steps=200",
    )
    parser.add_argument("--out", help="where to save the model (default <data dir>/reward_models/<run id>)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"invalid config:\n{exc}", file=sys.stderr)
        return 2
    settings = get_settings()
    engine = init_db(settings.database_url)
    name = config.name if config.name.startswith("rm") else f"rm-{config.name}"

    def out(run_id: str) -> Path:
        return Path(args.out) if args.out else Path(settings.data_dir) / "reward_models" / run_id

    job = reward_model_job(config, out, console=True, name=name)

    def announce(run_id: str) -> None:
        print(f"reward model run {run_id} ({name}) → {settings.database_url}", file=sys.stderr)

    try:
        run_id, summary = run_in_process(engine, config, job, name=name, announce=announce)
    except (DatasetError, ValueError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    accuracy = summary.metrics.get("rm/eval/accuracy")
    held_out = f"; held-out accuracy {accuracy:.3f}" if accuracy is not None else ""
    print(f"{summary.status} after {summary.steps} steps{held_out}; saved to {summary.path}", file=sys.stderr)
    print(run_id)
    return 0 if summary.status != "failed" else 1
