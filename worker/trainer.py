"""The trainer process: one run's attempt, from the run row to its outcome.

``python -m worker.trainer RUN_ID ATTEMPT`` is what the Celery supervisor starts (and what
``accelerate launch`` / ``torchrun`` wrap for several processes); ``alignscope train`` calls
``execute`` in-process. The run row must already be claimed (status running, this attempt).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
import transformers
from sqlalchemy.engine import Engine

from backend.settings import get_settings
from backend.storage import runs
from backend.storage.db import make_engine
from backend.storage.fencing import StaleAttempt
from contracts.config import RunConfig
from worker.db_sink import DbSink
from worker.engine.loop import RunSummary, train
from worker.engine.sinks import ConsoleSink, TeeSink


def environment(config: RunConfig) -> dict[str, object]:
    """Versions, device and seed recorded with every run."""
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "device": torch.cuda.get_device_name(0) if cuda and config.device != "cpu" else "cpu",
        "num_processes": config.num_processes,
        "seed": config.seed,
    }


def checkpoint_dir(run_id: str) -> Path:
    """Where a run's checkpoint lives (under the data dir)."""
    return Path(get_settings().data_dir) / "checkpoints" / run_id


def execute(engine: Engine, run_id: str, attempt: int, console: bool = False) -> RunSummary:
    """Trains the claimed run ``run_id`` at ``attempt`` and records its outcome in the store."""
    with engine.begin() as conn:
        row = runs.get_run(conn, run_id)
    if row is None:
        raise LookupError(f"run {run_id} does not exist")
    config = RunConfig.model_validate_json(row.config)
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 writes the store
    if main_rank:
        with engine.begin() as conn:
            runs.set_environment(conn, run_id, attempt, json.dumps(environment(config)))
    db_sink = DbSink(engine, run_id, attempt, total_steps=config.optim.max_steps)
    bar = ConsoleSink(config.optim.max_steps, config.name) if console else None
    interrupted = _interrupt_flag() if console else (lambda: False)
    folder = checkpoint_dir(run_id)
    try:
        summary = train(
            config,
            TeeSink(db_sink, bar) if bar else db_sink,
            should_stop=lambda: interrupted() or db_sink.stop_requested(),
            checkpoint_dir=folder,
        )
    except StaleAttempt:
        raise
    except Exception as exc:  # the run failed: record why, keep its metrics
        summary = RunSummary(
            "failed", 0, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        )
    finally:
        if bar:
            bar.close()
    if not main_rank:
        return summary
    db_sink.close()
    with engine.begin() as conn:
        if summary.checkpoint:
            runs.set_checkpoint(conn, run_id, attempt, summary.checkpoint)
        runs.finish_run(conn, run_id, attempt, summary.status, summary.error)
    return summary


def _interrupt_flag() -> Callable[[], bool]:
    """Ctrl-C sets a flag the loop polls (it then checkpoints and stops); a second Ctrl-C aborts."""
    state = {"hit": False}

    def handler(signum: int, frame: object) -> None:
        if state["hit"]:
            raise KeyboardInterrupt
        state["hit"] = True
        print("\nstopping after this step (checkpoint); Ctrl-C again to abort", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    return lambda: state["hit"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the trainer process: RUN_ID ATTEMPT."""
    args = sys.argv[1:] if argv is None else argv
    run_id, attempt = args[0], int(args[1])
    summary = execute(make_engine(get_settings().database_url), run_id, attempt)
    return 0 if summary.status != "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
