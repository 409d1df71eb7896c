"""A one-layer GPT-NeoX on the tiny tokenizer, for tests that need a real causal LM."""

from __future__ import annotations

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerBase


def one_layer_neox(tokenizer: PreTrainedTokenizerBase, **overrides: int) -> GPTNeoXForCausalLM:
    """hidden 32, 4 heads, intermediate 64, seeded with 0; ``overrides`` go to GPTNeoXConfig."""
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        eos_token_id=0,
        pad_token_id=1,
        **overrides,
    )
    return GPTNeoXForCausalLM(config)
