"""Sampling from a causal LM: left padding, seeds, EOS, the chat template."""

from __future__ import annotations

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from tests.engine.neox import one_layer_neox
from worker.engine.evaluation.generation import encode_prompt, sample


@pytest.fixture(scope="module")
def model(tiny_tokenizer) -> GPTNeoXForCausalLM:
    return one_layer_neox(tiny_tokenizer, max_position_embeddings=128, bos_token_id=2).eval()


def prompts(tokenizer) -> list[list[int]]:
    texts = ["What is 1 + 2?", "Sort: 9 3 5 1 7", "Repeat: apple", "hi"]
    return [list(tokenizer(t)["input_ids"]) for t in texts]  # lengths differ: left padding matters


def test_batched_greedy_equals_one_prompt_at_a_time(model, tiny_tokenizer) -> None:
    batch = sample(model, tiny_tokenizer, prompts(tiny_tokenizer), 0.0, 8, seed=0)
    single = [sample(model, tiny_tokenizer, [p], 0.0, 8, seed=0)[0] for p in prompts(tiny_tokenizer)]
    assert [s.ids for s in batch] == [s.ids for s in single]
    for p, s in zip(prompts(tiny_tokenizer), single, strict=True):  # greedy = argmax of a full forward
        logits = model(input_ids=torch.tensor([p + list(s.ids[:-1])])).logits[0, len(p) - 1 :]
        assert logits.argmax(-1).tolist()[: len(s.ids)] == list(s.ids)


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(model, tiny_tokenizer) -> None:
    state = torch.get_rng_state()
    first = sample(model, tiny_tokenizer, prompts(tiny_tokenizer) * 4, 1.0, 8, seed=3)
    again = sample(model, tiny_tokenizer, prompts(tiny_tokenizer) * 4, 1.0, 8, seed=3)
    other = sample(model, tiny_tokenizer, prompts(tiny_tokenizer) * 4, 1.0, 8, seed=4)
    assert first == again and first != other
    assert torch.equal(torch.get_rng_state(), state)
    for s in first:  # stops at EOS (kept) or at max_new_tokens
        assert 1 <= len(s.ids) <= 8
        assert s.finished == (s.ids[-1] == 0) and 0 not in s.ids[:-1]


def test_a_model_that_only_says_eos_returns_empty_texts(tiny_tokenizer) -> None:
    config = GPTNeoXConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        eos_token_id=0,
        pad_token_id=1,
    )
    silent = GPTNeoXForCausalLM(config)
    with torch.no_grad():
        silent.get_output_embeddings().weight.zero_()  # all logits 0 → argmax is token 0 = EOS
    out = sample(silent, tiny_tokenizer, prompts(tiny_tokenizer), 0.0, 5, seed=0)
    assert all(s.ids == (0,) and s.finished and s.text == "" for s in out)
    assert silent.training  # the model's mode is restored


def test_encode_prompt_uses_the_chat_template_when_there_is_one(tiny_tokenizer) -> None:
    templated = tiny_tokenizer.decode(encode_prompt(tiny_tokenizer, "Sort: 2 1"))
    assert templated == "<|user|>\nSort: 2 1\n<|assistant|>\n"  # TINY_CHAT_TEMPLATE + generation prompt
    plain = encode_prompt(tiny_tokenizer, "Sort: 2 1", use_chat_template=False)
    assert tiny_tokenizer.decode(plain) == "Sort: 2 1"
