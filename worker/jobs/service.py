"""The service's processes: ``serve`` (the API and dashboard under uvicorn, the reconciler and,
embedded, a real Celery worker process) and ``worker`` (a Celery worker for the run and group
tasks), with the data-dir lock and the shutdown order.

``serve`` holds ``<data_dir>/serve.lock`` (``flock``, shared with its worker), so a second ``serve``
on the same data dir is refused. Ctrl-C or SIGTERM stops uvicorn, the reconciler and the worker
(SIGTERM: warm shutdown; a running trainer finishes its step, checkpoints and its run goes back to
the queue at the same attempt, its task sent again, so the next start resumes it at once); a second
Ctrl-C kills the worker and its trainer at once (the run is then left to the reconciler). A bind
other than loopback needs ALIGNSCOPE_API_TOKEN. ``worker`` runs the threads pool, prefetch 1,
acks_late, on the given queues: ``gpu`` and ``cpu`` (Celery's default queue ``celery``).
"""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from backend.settings import Settings, get_settings
from backend.storage.db import init_db

QUEUE_NAMES = {"gpu": "gpu", "cpu": "celery", "celery": "celery"}
WORKER_STOP_S = 60.0


def use_data_dir(data_dir: Path | None) -> Settings:
    """Point this process and its children at ``data_dir`` (when given); return the settings."""
    if data_dir is not None:
        os.environ["ALIGNSCOPE_DATA_DIR"] = str(data_dir.expanduser().resolve())
        get_settings.cache_clear()
    return get_settings()


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DataDirBusy(RuntimeError):
    """Another ``alignscope serve`` (or the worker it started) holds the data dir."""


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/serve.lock`` holding the owner's pid; inherited by the
    worker process so the data dir stays taken until every process of this serve has exited."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "serve.lock"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise DataDirBusy(
                f"{data_dir} is already used by `alignscope serve` (pid {holder}) or a worker it started;"
                " stop it first, or pass another --data-dir"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        os.close(self.fd)


def serve_command(args: argparse.Namespace) -> int:
    settings = use_data_dir(args.data_dir)
    if not is_loopback(args.host) and not settings.api_token:
        print(f"serve: refusing to listen on {args.host} without ALIGNSCOPE_API_TOKEN (anyone who can "
              "reach it could launch runs); set a token or bind 127.0.0.1", file=sys.stderr)  # fmt: skip
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = DataDirLock(settings.data_dir)
    except DataDirBusy as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 1
    try:
        init_db(settings.database_url).dispose()
        embedded = settings.broker_url is None
        return _serve(args, settings, lock, embedded if args.worker is None else args.worker)
    except KeyboardInterrupt:
        return 130
    finally:
        lock.release()


def _serve(args: argparse.Namespace, settings: Settings, lock: DataDirLock, with_worker: bool) -> int:
    import uvicorn

    from backend.api import create_app
    from worker.jobs.enqueue import TaskEnqueuer
    from worker.jobs.reconciler import start_reconciler
    from worker.jobs.tasks import database

    signals = _SignalLatch()
    stop = threading.Event()
    worker = _start_worker(lock) if with_worker else None
    try:
        start_reconciler(database(), stop, settings)
        enqueuer = TaskEnqueuer()
        app = create_app(settings, enqueuer=enqueuer)
        server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"))
        shown = socket.gethostname() if args.host in ("0.0.0.0", "::") else args.host
        where = f"pid {worker.pid}" if worker else "none here"
        print(f"AlignScope dashboard: http://{shown}:{args.port}/  (API docs: /docs; data: "
              f"{settings.data_dir}; broker: {enqueuer.describe()}; worker: {where}); Ctrl-C stops",
              flush=True)  # fmt: skip
        signals.armed = True
        server.run()
    finally:
        stop.set()
        if worker is not None:
            _stop_worker(worker, signals)
    return 0


class _SignalLatch:
    """SIGINT/SIGTERM outside uvicorn's own handlers: before the server runs, one raises
    KeyboardInterrupt (startup is cut short, the worker still stopped); once ``armed``, the first is
    noted (uvicorn re-raises the one that stopped it) and a later one raises KeyboardInterrupt to cut
    the shutdown short."""

    def __init__(self) -> None:
        self.armed = False
        self.count = 0
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1 or not self.armed:
            raise KeyboardInterrupt


def _start_worker(lock: DataDirLock) -> subprocess.Popen[bytes]:
    """``alignscope worker`` as a child in its own session (Ctrl-C reaches only this process, which
    stops it in order), sharing the data-dir lock, and exiting if this process dies. Started through
    this module's ``main`` rather than the full CLI, which imports torch for ``train``."""
    argv = [sys.executable, "-m", "worker.cli.service_commands", "worker", "--parent-pid", str(os.getpid())]
    return subprocess.Popen(argv, start_new_session=True, pass_fds=(lock.fd,), stdin=subprocess.DEVNULL)


def _stop_worker(worker: subprocess.Popen[bytes], signals: _SignalLatch) -> None:
    """Warm shutdown (SIGTERM), then SIGKILL of its process group after WORKER_STOP_S or on a
    second Ctrl-C."""
    if worker.poll() is None:
        print("stopping the worker (a training run checkpoints and goes back to the queue; Ctrl-C again "
              "to kill it)", file=sys.stderr)  # fmt: skip
        worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(WORKER_STOP_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def worker_command(args: argparse.Namespace) -> int:
    settings = use_data_dir(args.data_dir)
    try:
        queues = sorted({QUEUE_NAMES[name.strip()] for name in args.queue.split(",") if name.strip()})
    except KeyError as exc:
        print(f"worker: unknown queue {exc}; use gpu, cpu or both (gpu,cpu)", file=sys.stderr)
        return 2
    if not queues or args.concurrency < 1 or args.gpus < 0:
        print("worker: give at least one queue, --concurrency ≥ 1 and --gpus ≥ 0", file=sys.stderr)
        return 2
    os.environ["ALIGNSCOPE_WORKER_GPUS"] = str(args.gpus)
    init_db(settings.database_url).dispose()
    if args.parent_pid:
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid,), daemon=True).start()
    from worker.jobs.tasks import app  # registers the tasks and the shutdown hooks

    argv = ["worker", "--pool=threads", f"--concurrency={args.concurrency}", "--prefetch-multiplier=1",
            f"--queues={','.join(queues)}", "--without-mingle", "--without-gossip",
            f"--hostname=alignscope-{os.getpid()}@%h", f"--loglevel={args.loglevel}"]  # fmt: skip
    if settings.broker_url is None:
        argv.append("--without-heartbeat")  # the filesystem broker has no fanout for worker events
    app.worker_main(argv)
    return 0


def _exit_with_parent(parent_pid: int) -> None:
    """Warm-shut this worker down when the ``serve`` that started it is gone (even SIGKILLed)."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
