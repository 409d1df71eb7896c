"""``alignscope train CONFIG [--set k=v ...]``: validate, record in the store, train in-process with a
progress bar, print the run id."""

from __future__ import annotations

import argparse
import sys

from backend.config_files import ConfigError, check_local_paths, load_config
from backend.settings import get_settings
from backend.storage.db import init_db
from contracts.pairs import DatasetError
from worker.jobs.in_process import run_in_process


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train a run in this process (preset name or YAML file)")
    parser.add_argument("config", help="a preset name (see `alignscope presets`) or a YAML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field by its dotted path, e.g. --set optim.lr=1e-4")  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, args.overrides)
        check_local_paths(config)
    except ConfigError as exc:
        print(f"invalid config:\n{exc}", file=sys.stderr)
        return 2
    entry_point = config.evaluation.judge.entry_point
    if entry_point:  # a user's rule judge: refuse it before anything is recorded or loaded
        from worker.engine.evaluation.custom_judge import EntryPointError, load_rule_function

        try:
            load_rule_function(entry_point)
        except EntryPointError as exc:
            print(f"invalid config:\n{exc}", file=sys.stderr)
            return 2
    engine = init_db(get_settings().database_url)

    def announce(run_id: str) -> None:
        print(f"run {run_id} ({config.name}) → {get_settings().database_url}", file=sys.stderr)

    try:
        run_id, summary = run_in_process(engine, config, announce=announce)
    except DatasetError as exc:
        print(f"dataset error:\n{exc}", file=sys.stderr)
        return 2
    alerts = f"; alerts: {', '.join(summary.alerts)}" if summary.alerts else ""
    print(f"{summary.status} after {summary.steps} steps{alerts}", file=sys.stderr)
    if summary.error:
        print(summary.error, file=sys.stderr)
    print(run_id)
    return 0 if summary.status != "failed" else 1
