"""The engine's CUDA path (bf16 autocast, float32 master weights). Skipped on machines without a GPU;
run on a lent GPU machine with `python -m pytest tests/engine/test_cuda.py`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from contracts import metric_keys as mk
from tests.engine.test_loop import small, values
from worker.engine.loop import train
from worker.engine.sinks import ListSink

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_beta_dpo_trains_on_cuda_with_bf16_autocast() -> None:
    sink = ListSink()
    summary = train(small("tiny-beta-dpo", "device=cuda", "optim.max_steps=40", "optim.lr=0.002"), sink)
    assert summary.status == "succeeded"
    loss = values(sink, mk.TRAIN_LOSS)
    assert loss[0] == pytest.approx(0.6931, abs=2e-2)  # bf16 forward: policy == reference up to rounding
    assert sum(loss[-10:]) / 10 < loss[0] - 0.05
    assert values(sink, mk.BDPO_KEPT_FRACTION)[-1] == pytest.approx(0.75)


def test_stop_and_resume_on_cuda(tmp_path: Path) -> None:
    config = small("tiny-beta-dpo", "device=cuda", "optim.max_steps=6")
    calls: list[int] = []
    first = train(config, ListSink(), should_stop=lambda: len(calls.append(1) or calls) >= 2,
                  checkpoint_dir=tmp_path / "c")  # fmt: skip
    assert first.status == "stopped" and first.steps == 2
    second = train(config, ListSink(), checkpoint_dir=tmp_path / "c")
    assert second.status == "succeeded" and second.steps == 6


def test_precomputed_reference_on_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIGNSCOPE_CACHE_DIR", str(tmp_path))
    sink = ListSink()
    summary = train(small("tiny-dpo", "device=cuda", "optim.max_steps=3", "reference.mode=precomputed"), sink)
    assert summary.status == "succeeded"
    assert values(sink, mk.TRAIN_LOSS)[0] == pytest.approx(0.6931, abs=2e-2)


def test_fsdp2_in_one_process_on_cuda_trains_with_bf16_parameters_and_resumes(tmp_path: Path) -> None:
    """FSDP2 over a world of one: bf16 parameters in compute (MixedPrecisionPolicy), float32 shards
    and AdamW state; the sharded checkpoint resumes exactly."""
    fsdp = ("distributed.strategy=fsdp", "evaluation.at_end=false")  # win rates need ddp
    config = small("tiny-beta-dpo", "device=cuda", "optim.max_steps=6", *fsdp)
    whole = ListSink()
    assert train(config, whole).status == "succeeded"
    calls: list[int] = []
    first, second = ListSink(), ListSink()
    stopped = train(config, first, lambda: len(calls.append(1) or calls) >= 3, tmp_path / "c")
    assert stopped.status == "stopped" and (tmp_path / "c" / "sharded" / ".metadata").is_file()
    assert train(config, second, checkpoint_dir=tmp_path / "c").status == "succeeded"
    assert values(first, mk.TRAIN_LOSS) + values(second, mk.TRAIN_LOSS) == values(whole, mk.TRAIN_LOSS)


def test_lora_on_cuda_reference_is_the_base() -> None:
    sink = ListSink()
    config = small("tiny-dpo", "device=cuda", "optim.max_steps=4", "model.lora.r=4", "optim.lr=0.01")
    assert train(config, sink).status == "succeeded"
    assert values(sink, mk.TRAIN_LOSS)[0] == pytest.approx(0.6931, abs=2e-2)
