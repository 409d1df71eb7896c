"""The lean GPT-NeoX forward (worker/engine/model/neox_forward.py) must give transformers' hidden states and
gradients on every config it claims, and must step aside where it would differ."""

from __future__ import annotations

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

from tests.engine.test_shared_prompt import PAIRS
from worker.engine.model import neox_forward
from worker.engine.model.loading import disable_dropout, enable_checkpointing
from worker.engine.model.shared_prompt import attention_mask, collate_shared


def _model(**overrides: object) -> GPTNeoXForCausalLM:
    torch.manual_seed(0)
    settings: dict[str, object] = {
        "vocab_size": 32,
        "hidden_size": 24,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 40,
        "hidden_dropout": 0.0,
        "attention_dropout": 0.0,
    }
    settings.update(overrides)
    return GPTNeoXForCausalLM(GPTNeoXConfig(**settings)).train()


def _transformers_hidden(model: GPTNeoXForCausalLM, batch) -> torch.Tensor:
    return model.gpt_neox(
        input_ids=batch.input_ids,
        attention_mask=attention_mask(model, batch.allowed),
        position_ids=batch.position_ids,
    ).last_hidden_state


def _grads(model: GPTNeoXForCausalLM, hidden: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    (hidden * weights).sum().backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"use_parallel_residual": False},
        {"rotary_pct": 1.0},
        {"rotary_pct": 0.5, "attention_bias": False, "num_attention_heads": 3},
        {"hidden_act": "gelu_new", "layer_norm_eps": 1e-3, "rotary_emb_base": 500},
    ],
    ids=["pythia-defaults", "sequential-residual", "full-rotary", "three-heads-no-bias", "gelu-new"],
)
def test_hidden_states_and_gradients_equal_transformers(overrides: dict[str, object]) -> None:
    model = _model(**overrides)
    batch = collate_shared(PAIRS, pad_id=0)
    assert neox_forward.applies(model)
    seeded = torch.Generator().manual_seed(1)
    weights = torch.randn(*batch.input_ids.shape, model.config.hidden_size, generator=seeded)
    real = batch.allowed[:, 0].diagonal(dim1=1, dim2=2).unsqueeze(-1)  # every position attends to itself
    expected = _transformers_hidden(model, batch)
    lean = neox_forward.hidden_states(model, batch.input_ids, batch.allowed, batch.position_ids)
    torch.testing.assert_close(lean * real, expected * real, rtol=1e-5, atol=1e-6)
    expected_grads = _grads(model, expected, weights)
    lean = neox_forward.hidden_states(model, batch.input_ids, batch.allowed, batch.position_ids)
    lean_grads = _grads(model, lean, weights)
    assert expected_grads.keys() == lean_grads.keys()
    assert len(lean_grads) == len(list(model.gpt_neox.parameters()))
    for name, grad in expected_grads.items():
        torch.testing.assert_close(lean_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_steps_aside_where_it_would_differ() -> None:
    checkpointed = _model()
    enable_checkpointing(checkpointed)
    assert not neox_forward.applies(checkpointed)
    assert neox_forward.applies(checkpointed.eval())  # checkpointing only acts in training

    dropping = _model(hidden_dropout=0.1, attention_dropout=0.1)
    assert not neox_forward.applies(dropping)
    assert neox_forward.applies(dropping.eval())
    disable_dropout(dropping)
    assert neox_forward.applies(dropping.train())
    assert all(layer.attention.attention_dropout == 0.0 for layer in dropping.gpt_neox.layers)

    assert not neox_forward.applies(_model(rope_scaling={"rope_type": "linear", "factor": 2.0}))
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    )
    assert not neox_forward.applies(llama)
