"""``alignscope``: the command line. Each sub-command lives in the module that owns it.

Errors: a ``UserError`` (bad config, missing file, unusable dataset or model, unknown export format)
and an ``OSError`` (a path that cannot be read or written) print their message alone and exit 2;
anything else is a bug and prints one line saying so, exit 1. ``ALIGNSCOPE_DEBUG=1`` shows the
traceback instead (docs/decisions/0080-cli-errors-without-tracebacks.md)."""

from __future__ import annotations

import argparse
import os
import sys

from contracts.user_errors import UserError
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
    """Runs one sub-command; returns its exit status (2: the user's input, 1: a failure, 130: Ctrl-C)."""
    args = build_parser().parse_args(argv)
    if os.environ.get("ALIGNSCOPE_DEBUG"):
        return int(args.handler(args) or 0)
    where = f"alignscope {args.command}"
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        target = f": {exc.filename}" if exc.filename else ""
        print(f"{where}: {exc.strerror or exc}{target}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line, not a traceback (ALIGNSCOPE_DEBUG=1 shows it)
        print(f"{where}: internal error ({type(exc).__name__}: {exc}); rerun with ALIGNSCOPE_DEBUG=1 "
              "for the traceback and report it", file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    sys.exit(main())
