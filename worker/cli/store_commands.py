"""Store commands: ``runs``, ``export``, ``presets``, ``db upgrade``."""

from __future__ import annotations

import argparse
import sys
import time

from backend.config_files import list_presets
from backend.settings import get_settings
from backend.storage import exports, lineage, runs
from backend.storage.db import init_db


def register(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("runs", help="list the runs in the store")
    listing.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "stopped"])
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=list_runs)
    export = commands.add_parser(
        "export", help="export a run's metrics and/or pairs (CSV or Parquet by extension)"
    )
    export.add_argument("run_id")
    export.add_argument("--metrics", metavar="FILE", type=_export_path, help="a .csv or .parquet file")
    export.add_argument("--pairs", metavar="FILE", type=_export_path, help="a .csv or .parquet file")
    export.set_defaults(handler=export_run)
    presets = commands.add_parser("presets", help="list the shipped presets")
    presets.set_defaults(handler=lambda args: print("\n".join(list_presets())))
    db = commands.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(handler=upgrade)


def _export_path(value: str) -> str:
    """argparse type: refuse a target we cannot write before anything is read."""
    if (problem := exports.export_format_problem(value)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def list_runs(args: argparse.Namespace) -> int:
    engine = init_db(get_settings().database_url)
    with engine.begin() as conn:
        rows = runs.list_runs(conn, status=args.status, limit=args.limit)
    print(f"{'id':32}  {'status':9}  {'step':>9}  {'created':16}  name")
    for row in rows:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.created_at))
        step = f"{row.step or 0}/{row.total_steps or '?'}"
        print(f"{row.id:32}  {row.status:9}  {step:>9}  {created:16}  {row.name}")
    return 0


def export_run(args: argparse.Namespace) -> int:
    if not args.metrics and not args.pairs:
        print("export: give --metrics FILE and/or --pairs FILE (.csv or .parquet)", file=sys.stderr)
        return 2
    engine = init_db(get_settings().database_url)
    with engine.begin() as conn:
        if runs.get_run(conn, args.run_id) is None:
            print(f"export: no run with id '{args.run_id}' (see `alignscope runs`)", file=sys.stderr)
            return 2
        chain = lineage.segments(conn, args.run_id)  # a resumed run: its parent's rows up to the resume too
        if args.metrics:
            rows = exports.lineage_metric_rows(conn, chain)
            count = exports.write_export(rows, exports.METRIC_COLUMNS, args.metrics)
            print(f"{count} metric rows → {args.metrics}", file=sys.stderr)
        if args.pairs:
            rows = exports.lineage_pair_rows(conn, chain)
            count = exports.write_export(rows, exports.PAIR_EXPORT_COLUMNS, args.pairs)
            print(f"{count} pair rows → {args.pairs}", file=sys.stderr)
    return 0


def upgrade(args: argparse.Namespace) -> int:
    init_db(get_settings().database_url)
    print(f"database at head: {get_settings().database_url}", file=sys.stderr)
    return 0
