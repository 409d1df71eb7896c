"""Launch benchmark: seconds from Launch to the run's first chart point, on an idle embedded worker,
with the warm spare trainer against today's cold start, measured in the same run.

Run from the repository root::

    .venv/bin/python -m bench.launch                 # 3 repeats of each mode (a few minutes)
    .venv/bin/python -m bench.launch --repeats 1     # smoke run

For each mode (``warm``: ``ALIGNSCOPE_WARM_TRAINER=1``, the spare trainer; ``cold``: ``=0``, a
trainer process started per run, as before) an ``alignscope serve`` (embedded: SQLite, the
filesystem broker, a real Celery worker process) starts on a temporary data dir. Each repeat waits
until the worker is idle — no run running and, warm, a spare that has finished its imports (its log
says so) — then POSTs the ``--preset`` config (``tiny-beta-dpo`` as the dashboard's form sends it)
to ``/api/runs``, which is what Launch does, and polls ``/api/runs/ID/metrics?key=train/loss``
every 20 ms until the first point is there: ``first_point_s`` is from the POST to that reply. The
run is then stopped and the next repeat waits for idle again. Modes alternate per repeat
(warm, cold, warm, …) so that the machine's load falls on both alike.

Target: warm median ≤ 2.0 s (issue 19 item 10; the cold start measured 5.3 s on an idle 2-core
machine). ``speedup`` is cold median / warm median. ``loadavg_1min`` is the machine's load before
and after: on a shared machine compare runs taken at similar loads. The last line on stdout is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from backend.config_files import load_config

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 2.0
POLL_S = 0.02


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``alignscope serve`` (the service module: the same code as the console entry) on a data dir."""

    def __init__(self, data_dir: Path, warm: bool) -> None:
        self.data_dir, self.warm, self.port = data_dir, warm, free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNSCOPE_")}
        env.update(ALIGNSCOPE_DATA_DIR=str(data_dir), ALIGNSCOPE_WARM_TRAINER="1" if warm else "0")
        argv = [sys.executable, "-m", "worker.cli.service_commands", "serve", "--port", str(self.port)]
        self.log = (data_dir.parent / f"serve-{'warm' if warm else 'cold'}.log").open("wb")
        self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # fmt: skip
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}/api", timeout=30)
        self._until(lambda: self._get("/health") is not None, 120, "the server to answer")

    def _get(self, path: str, **params: object) -> object:
        try:
            reply = self.client.get(path, params=params)
        except httpx.HTTPError:
            return None
        return reply.json() if reply.status_code == 200 else None

    def _until(self, check, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited while waiting for {what}")
            if check():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{what} (> {timeout_s} s)")

    def wait_idle(self) -> None:
        """No run running, the worker live and idle, and (warm) a spare done importing."""

        def idle() -> bool:
            workers = self._get("/workers") or []
            live = [w for w in workers if w["live"]]
            if not live or any(w["state"] != "idle" for w in live):
                return False
            if self._get("/runs", status="running") != []:
                return False  # a run still trains (or the API did not answer)
            return not self.warm or self._spare_ready()

        self._until(idle, 300, "an idle worker")

    def _spare_ready(self) -> bool:
        logs = list(self.data_dir.glob("logs/spares/*/spare.log"))
        return any("warm trainer ready" in log.read_text(errors="replace") for log in logs)

    def first_point_s(self, config: dict) -> float:
        """POST ``config`` (Launch) and wait for its first train/loss point; stop the run."""
        started = time.perf_counter()
        reply = self.client.post("/runs", json=config)
        reply.raise_for_status()
        run_id = reply.json()["id"]
        while True:
            series = self._get(f"/runs/{run_id}/metrics", key="train/loss")
            if series and series["series"].get("train/loss", {}).get("steps"):
                elapsed = time.perf_counter() - started
                break
            if time.perf_counter() - started > 300:
                raise TimeoutError(f"no point of run {run_id} after 300 s")
            time.sleep(POLL_S)
        self.client.post(f"/runs/{run_id}/stop")
        self._until(lambda: (self._get(f"/runs/{run_id}") or {}).get("status") != "running", 120, "the stop")
        return elapsed

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="tiny-beta-dpo")
    args = parser.parse_args()
    config = load_config(args.preset, ["optim.max_steps=1000"]).model_dump(mode="json")
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {"warm": [], "cold": []}
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        servers = {mode: Server(Path(tmp) / mode, mode == "warm") for mode in times}
        try:
            for _ in range(args.repeats):
                for mode, server in servers.items():
                    server.wait_idle()
                    times[mode].append(round(server.first_point_s(config), 3))
                    print(f"{mode}: {times[mode][-1]} s", file=sys.stderr, flush=True)
        finally:
            for server in servers.values():
                server.close()
    warm, cold = statistics.median(times["warm"]), statistics.median(times["cold"])
    result = {
        "bench": "launch",
        "metric": "launch_to_first_point_s",
        "preset": args.preset,
        "warm_median_s": warm,
        "cold_median_s": cold,
        "speedup": round(cold / warm, 2),
        "target_s": TARGET_S,
        "meets_target": warm <= TARGET_S,
        "warm_s": times["warm"],
        "cold_s": times["cold"],
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
