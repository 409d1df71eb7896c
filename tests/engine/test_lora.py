"""LoRA through peft: πref is the base model's own forward (adapters off, no copy), bit for bit;
checkpoints hold the adapters alone and resume exactly; the export loads back in peft and as a
merged from_pretrained folder; bad settings are refused with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from backend.config_files import ConfigError
from tests.engine.test_loop import small
from worker.engine.checkpoint import MODEL_FILE
from worker.engine.loop import Trainer, train
from worker.engine.model.loading import load_policy
from worker.engine.model.lora import ADAPTER_FILE
from worker.engine.model.scoring import score_pairs
from worker.engine.sinks import ListSink, NullSink

LORA = ("model.lora.r=4", "model.lora.alpha=8", "optim.lr=0.01")


def _trained(steps: int, *overrides: str) -> Trainer:
    trainer = Trainer(small("tiny-dpo", *LORA, *overrides), NullSink(), None)
    for _ in range(steps):
        trainer.run_step()
        trainer.apply()
    return trainer


@pytest.mark.parametrize("mode", ["copy", "precomputed"])
def test_reference_is_the_base_model_bit_for_bit_through_the_policys_own_modules(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIGNSCOPE_CACHE_DIR", str(tmp_path))  # a fresh precompute
    trainer = _trained(3, f"reference.mode={mode}")
    family = trainer.family
    batch = family.collate(list(family.train_items[:8]))
    base, _ = load_policy(trainer.config.model, trainer.config.seed)  # the same weights, no adapters
    with torch.no_grad():
        want = score_pairs(base.eval(), batch)
    calls = []
    layer = next(m for name, m in family.policy.named_modules() if name.endswith("base_layer"))
    handle = layer.register_forward_hook(lambda *args: calls.append(1))
    got = family.reference_scores(batch)
    handle.remove()
    assert bool(calls) == (mode == "copy")  # on the fly: the policy's own base layers, no second model
    assert torch.equal(got.chosen, want.chosen) and torch.equal(got.rejected, want.rejected)
    policy = family.policy_scores(batch)  # adapters back on, and trained: the policy has moved
    assert not torch.allclose(policy.chosen, want.chosen)
    assert any(p.requires_grad for p in family.policy.parameters())  # adapters still trainable


def test_stop_then_resume_equals_one_run_and_the_checkpoint_holds_adapters_only(tmp_path: Path) -> None:
    config = small("tiny-beta-dpo", *LORA, "optim.max_steps=6", "model.lora.export=none")
    whole = ListSink()
    train(config, whole)
    first, second = ListSink(), ListSink()
    calls: list[int] = []
    stopped = train(config, first, lambda: calls.append(1) or len(calls) >= 2, tmp_path / "ckpt")
    assert stopped.status == "stopped" and stopped.steps == 2
    names = list(load_file(tmp_path / "ckpt" / MODEL_FILE))
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    resumed = train(config, second, checkpoint_dir=tmp_path / "ckpt")
    assert resumed.status == "succeeded" and resumed.steps == 6

    def table(sink: ListSink) -> dict[tuple[str, int], float]:
        return {(p.key, p.step): p.value for p in sink.point_list if p.key != "train/examples_per_second"}

    assert {**table(first), **table(second)} == table(whole)
    assert first.pair_records + second.pair_records == whole.pair_records


@pytest.mark.slow
def test_adapter_and_merged_exports_score_alike(tmp_path: Path) -> None:
    folders = {}
    for kind in ("adapter", "merged"):
        config = small("tiny-dpo", *LORA, "optim.max_steps=3", f"model.lora.export={kind}")
        summary = train(config, NullSink(), checkpoint_dir=tmp_path / kind)
        assert summary.export == str(tmp_path / kind / kind)
        folders[kind] = Path(summary.export)
    assert (folders["adapter"] / ADAPTER_FILE).is_file()
    assert (folders["merged"] / "model.safetensors").is_file()
    trainer = Trainer(config, NullSink(), None)
    batch = trainer.family.collate(list(trainer.family.train_items[:8]))
    base, _ = load_policy(config.model, config.seed)
    with torch.no_grad():
        before = score_pairs(base, batch).chosen
        adapted = score_pairs(PeftModel.from_pretrained(base, folders["adapter"]).get_base_model(), batch)
        merged_model = AutoModelForCausalLM.from_pretrained(folders["merged"], local_files_only=True)
        merged = score_pairs(merged_model.float(), batch)
    assert not torch.allclose(adapted.chosen, before)  # three updates moved the adapters
    torch.testing.assert_close(merged.chosen, adapted.chosen, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(merged.rejected, adapted.rejected, rtol=1e-5, atol=1e-4)


def test_bad_lora_settings_are_refused_with_the_field_named() -> None:
    with pytest.raises(ConfigError, match=r"model.lora.target_modules: .*'q_proj; rm -rf' is not a module"):
        small("tiny-dpo", "model.lora.target_modules=[q_proj; rm -rf]")
    with pytest.raises(ConfigError, match=r"model\.lora applies to language models"):
        small("toy-3d-s1", "model.lora.r=4")
    with pytest.raises(ValueError, match=r"model\.lora\.target_modules"):
        Trainer(small("tiny-dpo", "model.lora.target_modules=[no_such_layer]"), NullSink(), None)
