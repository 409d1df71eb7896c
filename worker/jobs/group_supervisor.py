"""The experiment group's supervisor: one claimed group, run by ``python -m worker.experiments
GROUP_ID`` in its own process (it reads the preset, quick and seeds from the group's row), watched
to the end.

The group's row is the truth: the supervisor claims it (queued → running, a conditional UPDATE, so a
duplicate delivery does nothing); the child records the stages, the runs (ordinary run rows of the
group), the summary and the outcome, and renews the group's heartbeat. When the child dies without
recording its outcome, the supervisor marks the group failed with the tail of its output
(``<data_dir>/logs/experiments/<group>.log``). On worker shutdown the child gets SIGINT (the running
run checkpoints and stops; the group fails with the runs so far summarized), then SIGKILL after
``GRACE_S``, or at once on a second shutdown request (``abort``). The child watches this worker
(``children.watch_parent``) and dies with it, so a SIGKILLed worker leaves no experiment training on
as an orphan; the group's heartbeat then stops and the reconciler marks it failed. The task holds
its worker slot for the whole experiment (its runs train inside the child, one after another).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from sqlalchemy import Engine

from backend.storage import experiment_groups
from backend.storage.experiment_groups import GroupRow
from worker.jobs.children import Child, last_error_line

log = logging.getLogger(__name__)
GRACE_S = 60.0
POLL_S = 0.5


def experiment_argv(group: GroupRow) -> list[str]:
    """The command line that runs ``group`` (the child reads its preset, --quick and --seeds from the row)."""
    return [sys.executable, "-m", "worker.experiments", group.id]


def log_path(data_dir: Path, group: str) -> Path:
    """Where the child's output for ``group`` is written."""
    return data_dir / "logs" / "experiments" / f"{group}.log"


def supervise_group(
    engine: Engine,
    group: str,
    data_dir: Path,
    shutdown: threading.Event,
    poll_s: float = POLL_S,
    abort: threading.Event | None = None,
) -> str:
    """Claim ``group``, run its child and wait for it: "not claimed", "succeeded" or "failed".
    ``shutdown``: end the child cleanly (SIGINT, then SIGKILL after GRACE_S); ``abort``: kill it now."""
    with engine.begin() as conn:
        if not experiment_groups.claim_group(conn, group):
            log.info("group %s: not queued; nothing to do", group)
            return "not claimed"
        row = experiment_groups.get_group(conn, group)
    assert row is not None
    try:
        child = Child.start(experiment_argv(row), log_path(data_dir, group), append=False, role="experiment")
    except OSError as exc:
        return _fail(engine, group, f"could not start the experiment: {exc}")
    log.info("group %s: experiment pid %d (%s)", group, child.pid, child.log)
    try:
        code = _wait(child, shutdown, abort or threading.Event(), poll_s)
    finally:
        child.forget()
    if code == 0:
        return "succeeded"
    tail = child.tail()
    log.error("group %s: the experiment ended with %d; the end of its log:\n%s", group, code, tail)
    cause = f" ({found})" if (found := last_error_line(tail)) else ""
    if code < 0:
        kept = f"runs finished so far are kept (summarize them: alignscope experiment --summarize {group})"
        return _fail(engine, group, f"the experiment was killed by signal {-code}{cause}; {kept}")
    return _fail(engine, group, f"the experiment exited with status {code}{cause}; its log has the details")


def _wait(child: Child, shutdown: threading.Event, abort: threading.Event, poll_s: float) -> int:
    """The child's exit code (negative: the killing signal); on ``shutdown`` it gets SIGINT, then
    SIGKILL after GRACE_S or as soon as ``abort`` is set."""
    while child.running():
        if shutdown.is_set() and child.stopping_since is None:
            log.warning("worker shutting down: stopping experiment pid %d", child.pid)
            child.stop(signal.SIGINT)
        if child.stopping_since is None:
            shutdown.wait(poll_s)
        elif abort.is_set() or child.overdue(GRACE_S):
            child.kill()
            child.wait()
        else:
            abort.wait(poll_s)
    return child.wait()


def _fail(engine: Engine, group: str, error: str) -> str:
    """Mark the group failed unless the child already recorded its outcome."""
    with engine.begin() as conn:
        experiment_groups.finish_group(conn, group, "failed", error)
    return "failed"
