"""``alignscope serve`` and ``alignscope worker``: the service's processes (``worker.jobs.service``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker.jobs.service import serve_command, worker_command


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the API, the dashboard and (embedded) a worker")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", type=Path, help="database, broker and checkpoints (ALIGNSCOPE_DATA_DIR)")
    mode = serve.add_mutually_exclusive_group()
    mode.add_argument("--no-worker", dest="worker", action="store_false", default=None,
                      help="never start a worker here (scale-out: workers run elsewhere)")  # fmt: skip
    mode.add_argument("--with-worker", dest="worker", action="store_true",
                      help="start a local worker even with an external broker")  # fmt: skip
    serve.set_defaults(handler=serve_command)
    worker = commands.add_parser("worker", help="run a Celery worker that trains queued runs")
    worker.add_argument("--queue", default="gpu,cpu", help="comma-separated: gpu, cpu (default both)")
    worker.add_argument("--gpus", type=int, default=0, help="GPUs a run may use here (0: not checked)")
    worker.add_argument("--concurrency", type=int, default=1, help="runs at once (keep 1 on a GPU)")
    worker.add_argument("--data-dir", type=Path, help="checkpoints and logs (ALIGNSCOPE_DATA_DIR)")
    worker.add_argument("--loglevel", default="info")
    worker.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    worker.set_defaults(handler=worker_command)


def main(argv: list[str] | None = None) -> int:
    """``python -m worker.cli.service_commands serve|worker …``: these two commands without the rest
    of the CLI (same arguments as ``alignscope serve|worker``)."""
    parser = argparse.ArgumentParser(prog="alignscope")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
