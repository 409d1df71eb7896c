"""Helpers of the TRL-client tests: run examples/trl_dpo.py as a real process against a real
``alignscope serve`` with a token (or in this process, offline), read what the server or the spool
stored, and replay β-DPO's calibrations from the records."""

from __future__ import annotations

import collections
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import torch

from alignscope.trl import BetaDPO
from contracts.metric_keys import PAIR_COLUMNS
from tests.integration.conftest import REPO, SERVICE_CLI, ProcessKeeper, Service, wait_for
from worker.alignment.beta_dpo import BetaCalibrator, keep_count

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


def example_module() -> ModuleType:
    """examples/trl_dpo.py as a module (its ``parse`` and ``build`` run a trainer in this process)."""
    spec = importlib.util.spec_from_file_location("trl_dpo_example", REPO / "examples" / "trl_dpo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spooled_pairs(spool: Path) -> list[dict]:
    """The pair records of the one run spooled under ``spool`` (an offline run), in the order the
    writer logged them, as dicts of PAIR_COLUMNS plus ``seq`` (that order)."""
    [path] = list(spool.glob("*.jsonl"))  # one writer: one run, one spool
    messages = sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda m: m["seq"])
    assert messages[0]["kind"] == "open" and messages[-1]["kind"] == "finish"
    rows = [row for m in messages if m["kind"] == "batch" for row in m["body"].get("pairs", [])]
    return [{**dict(zip(PAIR_COLUMNS, row, strict=True)), "seq": seq} for seq, row in enumerate(rows)]


def replay_beta_dpo(pairs: dict[int, list[dict]], logs: dict[int, dict], scope: str = "batch") -> None:
    """A fresh engine calibrator, fed the recorded discrepancies in the recorded order once per
    calibration (the step with scope batch, each micro-batch with micro_batch), gives the recorded
    keep masks, β, M0, σ and kept counts exactly, the weights of SCIENCE.md §B.2, and (scope batch)
    TRL's logged loss: the masked mean over the step's kept pairs."""
    options = BetaDPO()
    calibrator = BetaCalibrator(options.settings(0.1), torch.Generator().manual_seed(options.seed))
    for step in sorted(pairs):
        ordered = sorted(pairs[step], key=lambda r: r["seq"])
        groups = by_micro_batch(ordered) if scope == "micro_batch" else [ordered]
        for records in groups:
            u = torch.tensor([r["discrepancy"] for r in records], dtype=torch.float32)
            cal = calibrator.calibrate(u)
            assert [r["kept"] for r in records] == cal.keep.tolist()
            assert sum(r["kept"] for r in records) == keep_count(len(records), options.keep_ratio)
            assert [r["beta"] for r in records] == [float(cal.beta)] * len(records)
            assert {(r["m0"], r["sigma"]) for r in records} == {(cal.m0, cal.sigma)}
            kept_m = [r["discrepancy"] for r in records if r["kept"]]
            expected_beta = max(0.1 * (1 + 0.6 * (sum(kept_m) / len(kept_m) - cal.m0)), 1e-3)
            assert records[0]["beta"] == pytest.approx(expected_beta, rel=1e-6)
            sigma = max(cal.sigma, 1e-3)
            for r in records:
                weight = math.exp(-((r["discrepancy"] - cal.m0) ** 2) / (2 * sigma**2))
                assert r["filter_weight"] == pytest.approx(weight, rel=1e-5)
        if scope == "batch":
            losses = [math.log1p(math.exp(-r["beta"] * r["discrepancy"])) for r in ordered if r["kept"]]
            assert logs[step]["loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-5), step


def by_micro_batch(records: list[dict]) -> list[list[dict]]:
    grouped: dict[int, list[dict]] = collections.defaultdict(list)
    for record in records:
        grouped[record["micro_batch"]].append(record)
    return [grouped[index] for index in sorted(grouped)]
