"""``alignscope sync SPOOL_DIR``: deliver the spools external runs left behind (alignscope.sync)."""

from __future__ import annotations

import argparse
import os
import sys


def register(commands: argparse._SubParsersAction) -> None:
    sync = commands.add_parser("sync", help="upload the spooled rows of external runs (alignscope client)")
    sync.add_argument(
        "spool_dir", help="the folder of <run_id>.jsonl spools (default of runs: .alignscope/spool)"
    )
    sync.add_argument("--url", default=os.environ.get("ALIGNSCOPE_URL"), help="server (ALIGNSCOPE_URL)")
    sync.add_argument("--token", default=os.environ.get("ALIGNSCOPE_API_TOKEN"), help="ALIGNSCOPE_API_TOKEN")
    sync.add_argument("--timeout", type=float, default=120.0, help="seconds to keep retrying per spool")
    sync.set_defaults(handler=sync_command)


def sync_command(args: argparse.Namespace) -> int:
    from alignscope.sync import sync

    if not args.url:
        print(
            "alignscope sync: give --url (or set ALIGNSCOPE_URL), e.g. --url http://127.0.0.1:8000",
            file=sys.stderr,
        )
        return 2
    outcomes = sync(args.spool_dir, args.url, args.token, args.timeout)
    for outcome in outcomes:
        state = "delivered" if outcome.left == 0 else f"{outcome.left} messages left (server unreachable?)"
        print(f"{outcome.run_id}: {outcome.delivered} messages sent, {state}")
    if not outcomes:
        print(f"alignscope sync: no spools (*.jsonl) in {args.spool_dir}")
    return 1 if any(o.left for o in outcomes) else 0
