"""Supervised child processes: start one with its output in a log file, watch it, end it (a signal,
then SIGKILL after a grace period), read its log's tail; and the child's side, the parent-death
watch. Both supervisors use it: ``run_supervisor`` for trainers, ``group_supervisor`` for
experiment groups (Airflow's one ``WatchedSubprocess`` for every child)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

WORKER_ENV = "ALIGNSCOPE_WORKER"  # "<host>:<pid>" of the supervising worker, seen by its children
TAIL_BYTES = 4000
_live: set[Child] = set()  # the children this process supervises now
_live_lock = threading.Lock()


class Child:
    """One supervised child process. ``start`` runs ``argv`` with stdout and stderr appended to (or,
    ``append=False``, written over) ``log``, this worker's ``WORKER_ENV`` and ``env`` added to the
    environment; the child is registered until ``forget`` so that ``kill_all`` reaches it. ``stdin``:
    DEVNULL, or PIPE for a child that waits for its work there (``warm_trainer``). ``role`` names
    what it is ("trainer", "experiment", "spare") in what ``kill_all`` reports."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, role: str = "trainer") -> None:
        self.process, self.log, self.role = process, log, role
        self.stopping_since: float | None = None

    @classmethod
    def start(
        cls,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        append: bool = True,
        stdin: int = subprocess.DEVNULL,
        role: str = "trainer",
    ) -> Child:
        log.parent.mkdir(parents=True, exist_ok=True)
        worker = f"{socket.gethostname()}:{os.getpid()}"
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", WORKER_ENV: worker, **(env or {})}
        with log.open("ab" if append else "wb") as sink, _live_lock:
            process = subprocess.Popen(
                list(argv), stdin=stdin, stdout=sink, stderr=subprocess.STDOUT, env=environ
            )
            child = cls(process, log, role)
            _live.add(child)
        return child

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code once ended (negative: the signal that killed it)."""
        return self.process.returncode

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask the child to end (``signum``) once; ``overdue`` then counts the grace period."""
        if self.stopping_since is None and self.running():
            self.process.send_signal(signum)
            self.stopping_since = time.monotonic()

    def overdue(self, grace_s: float) -> bool:
        """True once the child was asked to end more than ``grace_s`` ago."""
        return self.stopping_since is not None and time.monotonic() - self.stopping_since > grace_s

    def kill(self) -> None:
        if self.running():
            self.process.kill()

    def wait(self) -> int:
        return self.process.wait()

    def forget(self) -> None:
        """The child ended and its outcome is handled: no longer one of the live children."""
        with _live_lock:
            _live.discard(self)

    def tail(self, limit: int = TAIL_BYTES) -> str:
        """The last ``limit`` bytes of the child's log, decoded leniently."""
        with self.log.open("rb") as handle:
            handle.seek(max(0, self.log.stat().st_size - limit))
            return handle.read().decode("utf-8", "replace")


def kill_all() -> dict[str, int]:
    """SIGKILL every live child of this process (a second shutdown request: do not wait for
    checkpoints). Safe in a signal handler's thread: no logging. Returns how many were signalled, by
    role."""
    with _live_lock:
        running = [child for child in _live if child.running()]
    killed: dict[str, int] = {}
    for child in running:
        child.kill()
        killed[child.role] = killed.get(child.role, 0) + 1
    return killed


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (a killed worker whose parent has not
    reaped it yet is a zombie: ``os.kill(pid, 0)`` alone would still say alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs: existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def supervising_worker_pid() -> int | None:
    """The pid of the worker supervising this process (``WORKER_ENV``) when it runs on this host."""
    host, _, pid = os.environ.get(WORKER_ENV, "").rpartition(":")
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None


def watch_parent(
    pid: int, on_gone: Callable[[], None], direct: bool = False, poll_s: float = 1.0
) -> threading.Thread:
    """The child's side: a daemon thread that calls ``on_gone`` once process ``pid`` is gone (even
    SIGKILLed). ``direct``: ``pid`` is this process's parent, and being re-parented counts as gone
    (immune to pid reuse); otherwise ``pid`` may be any process on this host (a trainer under
    torchrun watches its worker, its grandparent)."""

    def alive() -> bool:
        return os.getppid() == pid if direct else process_alive(pid)

    def watch() -> None:
        while alive():
            time.sleep(poll_s)
        on_gone()

    thread = threading.Thread(target=watch, name=f"parent-watch-{pid}", daemon=True)
    thread.start()
    return thread


EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b(: .*)?$")


def last_error_line(output: str) -> str | None:
    """Why a child ended, for the error users see: the last ``SomethingError: message`` line of its
    output (a Python exception's summary, without the traceback above it, whose frames name server
    paths), else its last line that is not part of a traceback; None for no output. The whole output
    stays in the child's log."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    found = [line for line in lines if EXCEPTION_LINE.match(line)]
    plain = [line for line in lines if not line.startswith((" ", "\t", "Traceback"))]
    chosen = found or plain
    return chosen[-1][:500] if chosen else None
