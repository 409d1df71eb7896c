"""Any local ``from_pretrained`` causal LM trains through the one path: a Llama-family and a
Qwen2-family model built from small configs, full fine-tuning and LoRA, prompt sharing on."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from contracts import metric_keys as mk
from tests.engine.model_dirs import save_small_model
from tests.engine.test_loop import small, values
from worker.engine.loop import Trainer, train
from worker.engine.sinks import ListSink, NullSink


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_small_llama_and_qwen2_train_through_the_same_path(tmp_path: Path, family: str, lora: bool) -> None:
    folder = save_small_model(family, tmp_path / family)
    overrides = [
        "model.source=pretrained", f"model.path={folder}", "optim.max_steps=6", "optim.lr=0.01",
        *(["model.lora.r=4", "model.lora.alpha=8"] if lora else []),
    ]  # fmt: skip
    config = small("tiny-dpo", *overrides)
    trainer = Trainer(config, NullSink(), None)
    assert type(trainer.family.policy).__name__.lower().startswith(family)
    assert trainer.family.share_prompt  # one row per pair for both families
    trainable = sum(p.numel() for p in trainer.parallel.parameters())
    total = sum(p.numel() for p in trainer.family.policy.parameters())
    assert (trainable < total / 4) if lora else (trainable == total)
    sink = ListSink()
    summary = train(config, sink)
    assert summary.status == "succeeded" and summary.steps == 6
    loss = values(sink, mk.TRAIN_LOSS)
    assert loss[0] == pytest.approx(math.log(2), abs=1e-5)  # policy == reference at step 1
    assert all(g > 0 and math.isfinite(g) for g in values(sink, mk.TRAIN_GRAD_NORM))
    assert min(loss[1:]) < math.log(2)  # the updates move the policy towards the chosen responses
