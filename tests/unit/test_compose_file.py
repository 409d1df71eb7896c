"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the services and their
start order, healthchecks and the GPU reservation, every container command parsed by the real CLI
parser, and (when the ``docker-compose`` or ``docker compose`` client is installed) Compose's own
validation of the file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from worker.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_start_in_order_and_report_health(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker"}
    for name in ("postgres", "redis", "api", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
        }
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]  # published on the host's loopback only
    assert "ALIGNSCOPE_API_TOKEN" in services["api"]["environment"]  # a 0.0.0.0 bind needs the token


def test_every_container_command_is_a_valid_alignscope_command(compose: dict) -> None:
    parser = build_parser()
    for name in ("migrate", "api", "worker"):
        command = compose["services"][name]["command"]
        assert command[0] == "alignscope", name
        args = parser.parse_args(command[1:])  # argparse exits on an unknown option
        assert callable(args.handler), name


def test_the_image_holds_every_package_and_the_dashboard() -> None:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    assert {"contracts", "backend", "worker", "frontend", "presets", "pyproject.toml"} <= copied
    assert all((REPO / name).exists() for name in copied)
    assert any(line.startswith("USER ") and "root" not in line for line in lines)


@pytest.mark.skipif(
    not shutil.which("docker-compose") and not shutil.which("docker"), reason="no Compose client installed"
)
def test_compose_validates_the_file() -> None:
    command = ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "ALIGNSCOPE_API_TOKEN": "test-token"}
    probe = subprocess.run([*command, "version"], cwd=REPO, env=env, capture_output=True, text=True)
    if probe.returncode != 0:  # e.g. a docker client without the compose plugin
        pytest.skip(f"no working Compose client: {probe.stderr.strip()[:120]}")
    result = subprocess.run([*command, "config", "-q"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
