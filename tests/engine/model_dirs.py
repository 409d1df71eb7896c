"""Small Llama-family and Qwen2-family causal LMs saved as local ``from_pretrained`` folders
(safetensors, with the tiny tokenizer), for tests that load models the way users do."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from worker.engine.data.tokenizer import build_tiny_tokenizer
from worker.engine.model.loading import cache_dir

FAMILIES = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}


def save_small_model(family: str, folder: Path) -> Path:
    """A 2-layer ``family`` model (hidden 32, 4 query heads over 2 key/value heads, tied embeddings
    as in SmolLM2 and small Qwen2 models), seeded with 0, saved to ``folder``; returns the folder."""
    tokenizer = build_tiny_tokenizer(cache_dir() / "tokenizers")
    config_class, model_class = FAMILIES[family]
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
