"""This worker process's presence in the store: what it offers (host, queues, GPUs, CUDA, free
memory) and the run it holds, upserted into ``workers`` every ``REPORT_EVERY_S`` seconds by a daemon
thread, and marked stopped at a clean shutdown (``backend.storage.workers``).

CUDA is probed once, in a child process started by exec (``python -c``): this process never imports
torch nor touches CUDA, so a CUDA context is never forked into a trainer. Without an NVIDIA driver
(no ``/proc/driver/nvidia``) there is nothing to probe and the child is not started.

``cannot_take(config)`` answers, once the probe is done, whether this worker can train a config at
all: ``device: cuda`` on a worker without CUDA leaves the run queued for a worker that has it
(the reconciler sends its task again) instead of failing it a few seconds later.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from backend.storage import runs, workers
from contracts.config import RunConfig

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 120.0
PROBE = """
import json, torch
out = {"cuda": None, "devices": []}
if torch.cuda.is_available():
    out["cuda"] = torch.version.cuda
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        name = torch.cuda.get_device_name(index)
        out["devices"].append({"name": name, "total_bytes": total, "free_bytes": free})
print(json.dumps(out))
"""


class Presence:
    """What this worker reports; ``holding`` marks the run it trains now."""

    def __init__(self, queues: Sequence[str], gpus: int) -> None:
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self.queues = tuple(queues)
        self.gpus = gpus
        self.started_at = time.time()
        self.cuda: str | None = None
        self.devices: list[dict[str, Any]] = []
        self.probed = threading.Event()
        self.runs: list[str] = []
        self._lock = threading.Lock()

    def probe(self) -> None:
        """Learn CUDA and the devices from a child process (never in this one)."""
        try:
            if Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi"):
                found = _probe_child()
                self.cuda, self.devices = found.get("cuda"), list(found.get("devices", []))
        finally:
            self.probed.set()

    @contextlib.contextmanager
    def holding(self, run_id: str) -> Iterator[None]:
        with self._lock:
            self.runs.append(run_id)
        try:
            yield
        finally:
            with self._lock:
                self.runs.remove(run_id)

    def values(self) -> dict[str, Any]:
        """The row this worker reports now (``last_seen`` is added by the store)."""
        with self._lock:
            run_id = self.runs[-1] if self.runs else None
        return {
            "id": self.id, "host": socket.gethostname(), "pid": os.getpid(), "queues": list(self.queues),
            "gpus": self.gpus, "cuda": self.cuda, "devices": self.devices,
            "free_memory_bytes": _available_memory(), "run_id": run_id,
            "state": "busy" if run_id else "idle", "started_at": self.started_at,
        }  # fmt: skip

    def cannot_take(self, config: RunConfig) -> str | None:
        """Why this worker cannot train ``config`` at all (known once probed), or None."""
        if config.device == "cuda" and self.probed.is_set() and self.cuda is None:
            return "device: cuda and this worker has no CUDA"
        return None


_current: Presence | None = None


def current() -> Presence | None:
    """This process's presence, once ``start`` ran (None in a plain Python process)."""
    return _current


@contextlib.contextmanager
def holding(run_id: str) -> Iterator[None]:
    """Report ``run_id`` as this worker's run while the block runs (nothing outside a worker)."""
    presence = _current
    if presence is None:
        yield
        return
    with presence.holding(run_id):
        yield


def declines(engine: Engine, run_id: str, attempt: int) -> str | None:
    """Why this worker leaves queued run ``run_id`` for another worker (it cannot train it), or None."""
    presence = _current
    if presence is None:
        return None
    with engine.connect() as conn:
        row = runs.get_run(conn, run_id)
    if row is None or (row.status, row.attempt) != ("queued", attempt):
        return None  # the claim decides
    try:
        return presence.cannot_take(RunConfig.model_validate_json(row.config))
    except ValueError:
        return None  # the claim fails it with the reason


def start(engine: Engine, stop: threading.Event, queues: Sequence[str], gpus: int) -> Presence:
    """Probe in the background and report every ``REPORT_EVERY_S`` until ``stop``; then mark the row
    stopped. Returns the presence (also ``current()``)."""
    global _current
    presence = _current = Presence(queues, gpus)
    thread = threading.Thread(target=_report_loop, args=(engine, presence, stop), name="alignscope-presence")
    thread.daemon = True
    thread.start()
    return presence


def _report_loop(engine: Engine, presence: Presence, stop: threading.Event) -> None:
    prober = threading.Thread(target=presence.probe, name="alignscope-probe", daemon=True)
    prober.start()
    while not stop.is_set():
        _write(engine, lambda conn: workers.report(conn, presence.values()))
        stop.wait(workers.REPORT_EVERY_S)
    _write(engine, lambda conn: workers.mark_stopped(conn, presence.id))


def _write(engine: Engine, action: Any) -> None:
    try:
        with engine.begin() as conn:
            action(conn)
    except Exception as exc:  # the database may be away for a while: report again at the next tick
        log.warning("worker presence not recorded: %s", exc)


def _probe_child() -> dict[str, Any]:
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
        return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        log.warning("CUDA probe failed: %s", exc)
        return {}


def _available_memory() -> int | None:
    """Host memory available to new processes (``MemAvailable``), in bytes; None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
