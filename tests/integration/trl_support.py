"""Helpers of the TRL-client tests: run examples/trl_dpo.py as a real process against a real
``alignscope serve`` with a token, and read what the server stored."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.conftest import REPO, SERVICE_CLI, ProcessKeeper, Service, wait_for

TOKEN = "trl-client-test-token"
EXAMPLE = [sys.executable, str(REPO / "examples" / "trl_dpo.py")]


class Server:
    """``alignscope serve --no-worker`` with TOKEN on ``port`` (restartable on the same data dir)."""

    def __init__(self, keeper: ProcessKeeper, port: int, **env: str) -> None:
        self.keeper, self.port, self.env = keeper, port, env
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=f"{self.url}/api", timeout=30,
                                   headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        self.service: Service | None = None

    def start(self) -> Server:
        """Start it and wait until /api/health answers (with the token: every route checks it)."""
        argv = [sys.executable, "-m", SERVICE_CLI, "serve", "--port", str(self.port), "--no-worker"]
        service = self.keeper.start("serve", argv, ALIGNSCOPE_API_TOKEN=TOKEN, **self.env)
        self.service = service

        def healthy() -> bool:
            assert service.process.poll() is None, service.output()
            try:
                return self.client.get("/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 90, "alignscope serve to answer")
        return self

    def stop(self) -> None:
        assert self.service is not None
        self.service.stop()

    def get(self, path: str, **params: object) -> object:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def pairs(self, run_id: str) -> list[dict]:
        out: list[dict] = []
        while True:
            page = self.get(
                f"/runs/{run_id}/pairs", order="step", descending=False, limit=1000, offset=len(out)
            )
            out += page
            if len(page) < 1000:
                return out

    def wall_times(self, run_id: str, key: str) -> dict[int, float]:
        """step → wall time of ``key``'s points (the training process's clock at log time)."""
        response = self.client.get(f"/runs/{run_id}/export", params={"what": "metrics", "format": "csv"})
        assert response.status_code == 200, response.text
        lines = response.text.splitlines()
        header = lines[0].split(",")
        rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
        return {int(r["step"]): float(r["wall_time"]) for r in rows if r["key"] == key}

    def series(self, run_id: str, key: str) -> dict[int, float]:
        data = self.get(f"/runs/{run_id}/metrics", key=key, max_points=100_000)
        found = data["series"][key]
        return dict(zip(found["steps"], found["values"], strict=True))


def example(keeper: ProcessKeeper, url: str, *flags: str, history: Path, name: str = "example") -> Service:
    """Start the example (logging every step) writing TRL's log history to ``history``."""
    argv = [*EXAMPLE, "--url", url, "--token", TOKEN, "--log-history", str(history), *flags]
    return keeper.start(name, argv)


def finished(service: Service, timeout: float = 300) -> str:
    try:
        code = service.process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"the example did not finish in {timeout} s:\n{service.output()[-3000:]}"
        ) from None
    assert code == 0, service.output()[-5000:]
    return service.output()


def trl_logs(history: Path) -> tuple[str, dict[int, dict]]:
    """(run id, step → TRL's logged train metrics)."""
    data = json.loads(history.read_text())
    return data["run_id"], {e["step"]: e for e in data["log"] if "loss" in e}


def by_step(pairs: list[dict]) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = collections.defaultdict(list)
    for pair in pairs:
        grouped[pair["step"]].append(pair)
    return grouped
