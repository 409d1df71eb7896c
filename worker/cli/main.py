"""``alignscope``: the command line. Each sub-command lives in the module that owns it."""

from __future__ import annotations

import argparse
import sys

from worker.cli import (
    experiment_command,
    rm_command,
    service_commands,
    store_commands,
    sync_command,
    train_command,
)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="alignscope", description="Alignment diagnostics for DPO and β-DPO."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands_modules = (
        train_command,
        store_commands,
        rm_command,
        experiment_command,
        service_commands,
        sync_command,
    )
    for module in commands_modules:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one sub-command; returns its exit status."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
