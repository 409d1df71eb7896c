"""The audit's freeze, on a real server process (issue 16.3): hostile bodies — nested YAML and JSON,
huge integers, oversized and chunked bodies, bad Last-Event-IDs — sent at once while a client keeps
asking /api/health. Every hostile request is answered with a 4xx, and health keeps answering
promptly throughout (the audit's single 40 KB YAML body froze it for 38 s and ended in a 500)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import REPO, free_port

JSON = {"content-type": "application/json"}
YAML = {"content-type": "application/yaml"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "ALIGNSCOPE_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "uvicorn", "--factory", "backend.api:create_app", "--port", str(port)]
    process = subprocess.Popen([*command, "--log-level", "warning"], env=env, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _hostile() -> list[tuple[str, str, bytes, dict[str, str]]]:
    deep_yaml = ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 3000))).encode()
    return [
        ("POST", "/api/runs/yaml", b"a: " + b"[" * 40_000 + b"]" * 40_000, YAML),
        ("POST", "/api/runs/yaml", deep_yaml[: 250 * 1024], YAML),
        ("POST", "/api/runs/yaml", b"seed: " + b"9" * 200_000, YAML),
        ("POST", "/api/runs", b'{"a": ' * 40_000 + b"1" + b"}" * 40_000, JSON),
        ("POST", "/api/runs", b'{"seed": ' + b"9" * 200_000 + b"}", JSON),
        ("POST", "/api/runs", b'{"name": "' + b"x" * 3_000_000 + b'"}', JSON),
        ("POST", "/api/groups", b"[" * 100_000 + b"]" * 100_000, JSON),
        ("POST", "/api/login", b'{"token": ' + b"[" * 50_000 + b"}", JSON),
        ("GET", "/api/stream?until_idle_s=0.1", b"", {"Last-Event-ID": "\xb2"}),
    ]


def test_hostile_bodies_are_4xx_while_health_keeps_answering(server):
    slowest = 0.0
    stop = threading.Event()

    def probe() -> None:
        nonlocal slowest
        with httpx.Client(base_url=server, timeout=30) as client:
            while not stop.is_set():
                started = time.monotonic()
                assert client.get("/api/health").status_code == 200
                slowest = max(slowest, time.monotonic() - started)
                time.sleep(0.05)

    def send(item: tuple[str, str, bytes, dict[str, str]]) -> int:
        method, path, body, headers = item
        encoded = {k: v.encode("latin-1") for k, v in headers.items()}
        return httpx.request(method, server + path, content=body, headers=encoded, timeout=60).status_code

    prober = threading.Thread(target=probe)
    prober.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(send, _hostile() * 2))
    finally:
        stop.set()
        prober.join()
    assert all(400 <= status < 500 for status in statuses), statuses
    assert time.monotonic() - started < 30  # the audit: 38 s for one body
    assert slowest < 3.0, f"health took {slowest:.2f} s"  # loose: a shared 2-core machine
