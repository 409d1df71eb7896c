"""Fixtures that start REAL service processes and clean every one of them up.

``keeper`` starts processes (``alignscope serve``, Celery workers) each in its own session with its
output in a log file, all with ALIGNSCOPE_DATA_DIR set to the test's own folder; at teardown it stops
them (SIGTERM, then SIGKILL of the process group) and kills whatever process still has that folder in
its environment (a trainer, a worker started by ``serve``), so nothing outlives its test.

``pg_database_url`` is a fresh PostgreSQL database (as_test_<random>, dropped at the end);
``redis_url`` an empty Redis database number (flushed at the end); tests needing them are skipped
when the local servers are unreachable.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg
import pytest
import redis
from sqlalchemy import Engine, select

from backend.config_files import load_config
from backend.storage import runs
from backend.storage.db import make_engine
from backend.storage.tables import metric_points, metric_series
from contracts import metric_keys as mk

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_SERVER = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
                "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
                "--logfile", "/var/log/redis/ci.log"]  # fmt: skip
TINY = ["optim.max_steps=8", "model.tiny.hidden_size=32", "data.constructed.num_pairs=64"]
CLI, SERVICE_CLI = "worker.cli.main", "worker.cli.service_commands"
T = TypeVar("T")


def tiny_config(*overrides: str) -> dict:
    """The tiny-dpo preset shrunk to a few seconds of training, as RunConfig JSON."""
    return load_config("tiny-dpo", [*TINY, *overrides]).model_dump(mode="json")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.25) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def pids_using(data_dir: Path) -> list[int]:
    """Processes whose environment has ALIGNSCOPE_DATA_DIR=<data_dir> (this test's processes)."""
    marker = f"ALIGNSCOPE_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def trainer_pids(data_dir: Path, run_id: str) -> list[int]:
    """Trainer processes of ``run_id`` started for this test: cold ones name the run in their
    command line; a warm spare that took the run writes its output to the run's log."""
    found = []
    for pid in pids_using(data_dir):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            output = os.readlink(f"/proc/{pid}/fd/1") if b"worker.jobs.warm_trainer" in argv else ""
        except OSError:
            continue
        cold = b"worker.jobs.trainer" in argv and run_id.encode() in argv
        if cold or f"/logs/{run_id}/attempt-" in output:
            found.append(pid)
    return found


@dataclass
class Service:
    """A started process (leader of its own process group) and its log file."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        """Signal the process (not its group) and wait; SIGKILL the group after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid)
            self.process.wait()
            return None


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class ProcessKeeper:
    """Starts this test's processes and guarantees their end."""

    data_dir: Path
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)

    def start(self, name: str, argv: list[str], **env: str) -> Service:
        log = self.data_dir.parent / f"{name}-{len(self.services)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                argv, cwd=REPO, env={**self.env, **env}, stdin=subprocess.DEVNULL,
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        service = Service(process, log)
        self.services.append(service)
        return service

    def worker(self, *args: str, **env: str) -> Service:
        """``alignscope worker`` (through its module: the same code without the torch-importing CLI),
        once it is ready to consume."""
        argv = [sys.executable, "-m", SERVICE_CLI, "worker", "--loglevel=info", *args]
        service = self.start("worker", argv, **env)
        wait_for(lambda: " ready." in service.output() or service.process.poll() is not None, 60, "worker")
        assert service.process.poll() is None, service.output()
        return service

    def serve(self, port: int, *args: str, full_cli: bool = False, **env: str) -> Service:
        """``alignscope serve`` once /api/health answers; through the console entry's module with
        ``full_cli``, else through its own module (the same code, without importing torch)."""
        argv = [sys.executable, "-m", CLI if full_cli else SERVICE_CLI, "serve", "--port", str(port), *args]
        service = self.start("serve", argv, **env)

        def healthy() -> bool:
            assert service.process.poll() is None, service.output()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 90, "alignscope serve to answer")
        return service

    def close(self) -> None:
        for service in reversed(self.services):
            if service.process.poll() is None:
                service.stop(timeout=30)
        for pid in pids_using(self.data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def base_env(data_dir: Path) -> dict[str, str]:
    """The environment of this test's processes: its data dir, no inherited ALIGNSCOPE_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNSCOPE_")}
    return {**env, "ALIGNSCOPE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def keeper(data_dir: Path, base_env: dict[str, str]) -> Iterator[ProcessKeeper]:
    keeper = ProcessKeeper(data_dir, base_env)
    try:
        yield keeper
    finally:
        keeper.close()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session's service tests."""
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    name = f"as_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """An empty Redis database number for this session."""
    client = redis.Redis(REDIS_HOST, REDIS_PORT, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable: {exc}")
    number = next((n for n in range(15, 0, -1) if redis.Redis(REDIS_HOST, REDIS_PORT, n).dbsize() == 0), None)
    if number is None:
        pytest.skip("no empty Redis database number")
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        ensure_redis()
        redis.Redis(REDIS_HOST, REDIS_PORT, number).flushdb()


def ensure_redis(timeout: float = 20.0) -> None:
    """Start the local redis-server unless it answers."""
    client = redis.Redis(REDIS_HOST, REDIS_PORT, socket_timeout=1)
    try:
        client.ping()
        return
    except redis.RedisError:
        subprocess.run(REDIS_SERVER, check=False)
    wait_for(lambda: _pings(client), timeout, "redis-server to start")


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def scaleout_settings(pg_database_url: str, redis_url: str) -> dict[str, str]:
    """Redis + PostgreSQL; the reconciler runs every second and re-sends a lost message after 10 s."""
    return {
        "ALIGNSCOPE_DATABASE_URL": pg_database_url,
        "ALIGNSCOPE_BROKER_URL": redis_url,
        "ALIGNSCOPE_RECONCILE_EVERY_S": "1",
        "ALIGNSCOPE_RESEND_AFTER_S": "10",
    }


@pytest.fixture
def scaleout(keeper: ProcessKeeper, pg_database_url: str, redis_url: str) -> ProcessKeeper:
    """``keeper`` whose processes use Redis + PostgreSQL."""
    keeper.env.update(scaleout_settings(pg_database_url, redis_url))
    return keeper


@pytest.fixture(scope="module")
def scaleout_api(
    tmp_path_factory: pytest.TempPathFactory, pg_database_url: str, redis_url: str
) -> Iterator[Api]:
    """``alignscope serve --no-worker`` on Redis + PostgreSQL, shared by a module's tests."""
    data = tmp_path_factory.mktemp("api") / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNSCOPE_")}
    env.update(scaleout_settings(pg_database_url, redis_url), ALIGNSCOPE_DATA_DIR=str(data))
    keeper = ProcessKeeper(data, env)
    try:
        port = free_port()
        keeper.serve(port, "--no-worker")
        yield Api(port)
    finally:
        keeper.close()


@pytest.fixture
def pg_engine(pg_database_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_database_url)
    yield engine
    engine.dispose()


class Api:
    """The service's HTTP API at ``base`` (a thin httpx client)."""

    def __init__(self, port: int) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}/api", timeout=30)

    def submit(self, config: dict) -> str:
        response = self.client.post("/runs", json=config)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def run(self, run_id: str) -> dict:
        response = self.client.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self, run_id: str) -> dict:
        response = self.client.post(f"/runs/{run_id}/stop")
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, run_id: str, statuses: tuple[str, ...], timeout: float) -> dict:
        return wait_for(lambda: (r := self.run(run_id))["status"] in statuses and r, timeout,
                        f"run {run_id} to become {'/'.join(statuses)}", every=0.5)  # fmt: skip

    def wait_step(self, run_id: str, step: int, timeout: float) -> dict:
        return wait_for(lambda: ((r := self.run(run_id))["step"] or 0) >= step and r, timeout,
                        f"run {run_id} to reach step {step}", every=0.2)  # fmt: skip


def loss_points(engine: Engine, run_id: str) -> list[tuple[int, float]]:
    """(step, wall time) of the run's train/loss points by step (duplicates would show twice)."""
    mp, ms = metric_points.c, metric_series.c
    stmt = (
        select(mp.step, mp.wall_time)
        .join_from(metric_points, metric_series, ms.id == mp.series_id)
        .where(ms.run_id == run_id, ms.key == mk.TRAIN_LOSS)
    )
    with engine.connect() as conn:
        return sorted(conn.execute(stmt).tuples().all())


def loss_steps(engine: Engine, run_id: str) -> list[int]:
    """The steps of the run's train/loss series, in order (duplicates would show twice)."""
    return [step for step, _ in loss_points(engine, run_id)]


FINAL = ("succeeded", "failed", "stopped")


def run_row(engine: Engine, run_id: str) -> runs.RunRow:
    """The run's row as stored now (it must exist)."""
    with engine.connect() as conn:
        row = runs.get_run(conn, run_id)
    assert row is not None
    return row
