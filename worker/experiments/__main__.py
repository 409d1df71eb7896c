"""``python -m worker.experiments GROUP_ID``: the child process an experiment group's supervisor
starts (``worker.jobs.group_supervisor``), symmetric with ``python -m worker.jobs.trainer``. It
reads the preset, quick and seeds from the group's row, and dies with the worker that started it
(SIGKILL to itself once it is gone), so a killed worker leaves no orphan training on."""

from __future__ import annotations

import os
import signal
import sys

from backend.settings import get_settings
from backend.storage import experiment_groups
from backend.storage.db import init_db
from worker.jobs.children import supervising_worker_pid, watch_parent

PARENT_EXIT_POLL_S = 0.5


def _die_with(pid: int) -> None:
    os.write(2, f"the worker (pid {pid}) that started this experiment is gone; exiting\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m worker.experiments GROUP_ID", file=sys.stderr)
        return 2
    if (pid := supervising_worker_pid()) is not None:
        watch_parent(pid, lambda: _die_with(pid), direct=True, poll_s=PARENT_EXIT_POLL_S)
    engine = init_db(get_settings().database_url)
    with engine.begin() as conn:
        row = experiment_groups.get_group(conn, args[0])
    if row is None:
        print(f"group {args[0]} does not exist", file=sys.stderr)
        return 2
    from worker.experiments.runner import run_experiment  # torch loads after the parent watch starts

    return run_experiment(row.experiment, row.quick, row.seeds, group=row.id)


if __name__ == "__main__":
    sys.exit(main())
