"""A warm spare trainer: a trainer process started ahead of time that has already imported torch,
transformers and the engine, and waits on its stdin for the run it will train. Importing those is
most of a cold trainer's start-up (seconds on a small CPU), so handing a one-process run to the
spare puts its first point on the chart that much sooner (bench/launch.py measures it).

CUDA safety: the spare is started by exec (``subprocess.Popen`` of ``python -m
worker.jobs.warm_trainer``) from the worker, which never touches CUDA, and the spare itself touches
CUDA only once it trains — never a fork of a process holding a CUDA context
(docs/decisions/0083-warm-spare-trainer.md).

The supervisor's side (``Spares``): at most one spare per worker, started when the worker is ready
and again after each run it took ends; ``start_trainer`` hands a one-process run to the ready spare
(one JSON line ``{"run_id", "attempt", "log"}``, then stdin closes) or starts a cold trainer as
before (several processes under torchrun, no spare, or ``ALIGNSCOPE_WARM_TRAINER=0``). The spare's
side (``main``): import, wait for the line, point stdout and stderr at the run's log, then run
``worker.jobs.trainer.main`` exactly as a cold trainer would. A spare whose worker dies sees its
stdin close and exits.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from worker.jobs.children import Child

ENABLED_ENV = "ALIGNSCOPE_WARM_TRAINER"  # "0" turns the spare off (every trainer starts cold)
SPARE_ARGV = [sys.executable, "-m", "worker.jobs.warm_trainer"]
READY = "warm trainer ready"


def enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return environ.get(ENABLED_ENV, "1") not in ("0", "false", "no", "")


class Spares:
    """This worker's spare trainer (at most one), guarded by a lock: supervisors run in threads."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.spare: Child | None = None
        self._lock = threading.Lock()

    def refill(self) -> None:
        """Start a spare unless one is waiting (or it is turned off)."""
        if not enabled():
            return
        with self._lock:
            if self.spare is not None and self.spare.running():
                return
            if self.spare is not None:
                self.spare.forget()
            log = self.folder / "spare.log"
            try:
                self.spare = Child.start(SPARE_ARGV, log, append=False, stdin=subprocess.PIPE, role="spare")
            except OSError:
                self.spare = None

    def take(self, run_id: str, attempt: int, log: Path) -> Child | None:
        """The waiting spare, now assigned to ``run_id`` (its output goes to ``log``), or None."""
        with self._lock:
            spare, self.spare = self.spare, None
        if spare is None or not spare.running() or spare.process.stdin is None:
            if spare is not None:
                spare.kill()
                spare.forget()
            return None
        log.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"run_id": run_id, "attempt": attempt, "log": str(log)}) + "\n"
        try:
            spare.process.stdin.write(line.encode())
            spare.process.stdin.close()
        except OSError:  # it died meanwhile
            spare.kill()
            spare.forget()
            return None
        spare.log, spare.role = log, "trainer"
        return spare

    def close(self) -> None:
        """End the waiting spare (the worker shuts down; may run in a signal handler: no blocking)."""
        if not self._lock.acquire(timeout=1.0):
            return  # a supervisor is starting one; the spare exits when its worker's pipe closes
        try:
            spare, self.spare = self.spare, None
        finally:
            self._lock.release()
        if spare is not None:
            spare.stop()
            spare.forget()


_spares: Spares | None = None


def install(data_dir: Path) -> Spares:
    """This worker's spares, with a first spare starting now."""
    global _spares
    _spares = Spares(data_dir / "logs" / "spares" / str(os.getpid()))
    _spares.refill()
    return _spares


def start_trainer(run_id: str, attempt: int, processes: int, cold_argv: Sequence[str], log: Path) -> Child:
    """The trainer of ``run_id``: the warm spare for a one-process run when one waits, else a cold
    start of ``cold_argv``."""
    spares = _spares
    if spares is not None and processes == 1 and enabled():
        taken = spares.take(run_id, attempt, log)
        if taken is not None:
            return taken
    return Child.start(cold_argv, log)


def refill() -> None:
    """After a run ends: start the next spare (not while it trains: it would compete for the CPU)."""
    if _spares is not None:
        _spares.refill()


def close() -> None:
    if _spares is not None:
        _spares.close()


# ------------------------------------------------------------------------------ the spare's side


def main() -> int:
    """Import the trainer, wait for a run on stdin, then train it like ``python -m worker.jobs.trainer``."""
    from worker.jobs import trainer  # torch, transformers, the engine: the slow part, done ahead

    _warm_up()
    print(READY, flush=True)
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the worker went away (stdin closed) or shut down: nothing to train
    job = json.loads(line)
    _redirect_output(Path(job["log"]))
    return trainer.main([str(job["run_id"]), str(job["attempt"])])


def _warm_up() -> None:
    """What every run's first step pays once per process, paid ahead: torch's CPU kernels and
    autograd engine initialised by one small forward and backward (CPU only: CUDA is first touched
    by the run itself), and the imported modules' objects moved out of the collector's reach
    (``gc.freeze``), so the engine's ``gc.collect`` between model loads does not walk them again."""
    import torch

    layer = torch.nn.Linear(64, 64)
    hidden = torch.nn.functional.layer_norm(layer(torch.randn(8, 64)), (64,))
    torch.nn.functional.log_softmax(hidden, dim=-1).sum().backward()
    del layer, hidden
    gc.collect()
    gc.freeze()


def _redirect_output(log: Path) -> None:
    """stdout and stderr (file descriptors 1 and 2, so that C-level output follows) to ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as the cold trainer: the store is written and closed, skip the teardown
