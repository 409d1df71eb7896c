"""Browser tests against a real service: `alignscope serve` on a free port with a temporary data dir,
driven by Playwright through the system Chromium (never a downloaded browser).

Fixtures: ``service`` (the served dashboard, plus a tiny-dpo run recorded in the background with
`alignscope train` for the compare test), ``browser`` (one headless Chromium per session) and
``page`` (a 1280×800 tab whose console errors fail the test).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
ALIGNSCOPE = REPO / ".venv" / "bin" / "alignscope"
SMALL_DPO = ["--set", "optim.max_steps=12", "--set", "optim.batch_size=8", "--set", "checkpoint_every=0"]

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, token: str | None = None) -> object:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def wait_healthy(
    base: str, process: subprocess.Popen, timeout_s: float = 90.0, token: str | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if get_json(f"{base}/api/health", token).get("status") == "ok":  # type: ignore[union-attr]
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{base} did not become healthy in {timeout_s} s")


def stop_process(process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """Ctrl-C (the clean shutdown), then kill what is left of its process group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a service on ``data_dir``: no token, database or broker from outside."""
    env = {**os.environ, "ALIGNSCOPE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    for name in ("ALIGNSCOPE_API_TOKEN", "ALIGNSCOPE_DATABASE_URL", "ALIGNSCOPE_BROKER_URL"):
        env.pop(name, None)
    return {**env, **extra}


def start_api(env: dict[str, str], port: int) -> subprocess.Popen:
    """uvicorn with ``backend.api.app:create_app`` (API and dashboard, no worker) on ``port``."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "backend.api.app:create_app",
        "--port",
        str(port),
    ]
    quiet = subprocess.DEVNULL
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=quiet, stderr=quiet, start_new_session=True)


@dataclass
class Service:
    """A running dashboard: ``base`` URL, its data dir, and a background ``alignscope train``."""

    base: str
    data_dir: Path
    env: dict[str, str]
    recording: subprocess.Popen | None = None
    state: dict[str, str] = field(default_factory=dict)  # shared between tests (e.g. the β-DPO run id)

    def api(self, path: str) -> object:
        return get_json(f"{self.base}/api{path}")

    def dpo_run_id(self, timeout_s: float = 120.0) -> str:
        """The tiny-dpo run recorded in the background (waits for it to finish)."""
        assert self.recording is not None
        out, _ = self.recording.communicate(timeout=timeout_s)
        assert self.recording.returncode == 0, out
        return out.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (apt-get install -y chromium)")
    data_dir = tmp_path_factory.mktemp("alignscope-data")
    port = free_port()
    env = clean_env(data_dir)
    log = (data_dir / "serve.log").open("w")
    command = [str(ALIGNSCOPE), "serve", "--port", str(port), "--data-dir", str(data_dir)]
    server = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    service = Service(f"http://127.0.0.1:{port}", data_dir, env)
    try:
        wait_healthy(service.base, server)
        service.recording = subprocess.Popen(
            [str(ALIGNSCOPE), "train", "tiny-dpo", *SMALL_DPO],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        yield service
    finally:
        if service.recording is not None:
            stop_process(service.recording)
        stop_process(server)
        log.close()


@pytest.fixture(scope="session")
def browser(service: Service):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Tab:
    """A browser tab and the console errors it logged. ``expected`` holds substrings of errors a test
    provokes on purpose (Chromium logs every 4xx reply of fetch() as a console error)."""

    page: object
    errors: list[str]
    expected: list[str] = field(default_factory=list)

    def watch(self, page) -> None:
        """Collect the console errors of ``page`` (another tab of the same test) too."""

        def console(message) -> None:
            if message.type == "error":
                self.errors.append(f"{message.text} ({message.location.get('url')})")

        page.on("console", console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(part in e for part in self.expected)]

    def shoot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.evaluate("window.scrollTo(0, 0)")  # type: ignore[attr-defined]
        self.page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        return path


@pytest.fixture
def tab(browser) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(20_000)
    tab = Tab(page, [])
    tab.watch(page)
    yield tab
    context.close()
    assert tab.unexpected() == [], f"console errors: {tab.unexpected()}"
