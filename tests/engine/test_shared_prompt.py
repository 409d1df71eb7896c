"""Prompt sharing (engine/model/shared_prompt.py): one row prompt ‖ chosen ‖ rejected per pair must give
the log-probs, the gradients and the training trajectory of the 2B-row batch, with fewer tokens."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from contracts import metric_keys as mk
from tests.engine.test_loop import small, values
from worker.engine.data.pairs import TokenizedPair, collate
from worker.engine.loop import Trainer, train
from worker.engine.model.scoring import response_logps, shared_response_logps
from worker.engine.model.shared_prompt import collate_shared, supports_shared_prompt
from worker.engine.sinks import ListSink, NullSink


def _pair(pair_id: str, prompt: tuple[int, ...], chosen: tuple[int, ...], rejected: tuple[int, ...]):
    return TokenizedPair(pair_id, prompt, chosen, rejected, "p", "c", "r")


PAIRS = [
    _pair("a", (5, 6, 7), (8, 9, 2), (10, 2)),
    _pair("b", (11,), (12, 13, 14, 15, 2), (16, 2)),
    _pair("c", (3, 4, 5, 6, 7, 8), (9, 2), (17, 18, 19, 2)),
]


def test_rows_positions_mask_and_scored_tokens_by_hand() -> None:
    batch = collate_shared([_pair("x", (5, 6), (7, 2), (8, 9, 2)), _pair("y", (4,), (2,), (3, 2))], pad_id=0)
    # widths 2+2+3 = 7 and 1+1+2 = 4 → T = 7; the second row has 3 pads
    assert batch.input_ids.tolist() == [[5, 6, 7, 2, 8, 9, 2], [4, 2, 3, 2, 0, 0, 0]]
    # rejected positions restart where the prompt ends: 2, 3, 4 (row x) and 1, 2 (row y)
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 2, 3, 4], [0, 1, 1, 2, 0, 0, 0]]
    allowed = batch.allowed[0, 0].int().tolist()
    assert allowed[4] == [1, 1, 0, 0, 1, 0, 0]  # first rejected token: the prompt and itself
    assert allowed[6] == [1, 1, 0, 0, 1, 1, 1]  # last rejected token: never the chosen ones (2, 3)
    assert allowed[3] == [1, 1, 1, 1, 0, 0, 0]  # last chosen token: causal
    pads = batch.allowed[1, 0].int().tolist()
    assert pads[5] == [1, 1, 1, 1, 0, 1, 0]  # a pad query sees the real tokens and itself, no other pad
    # scored tokens: x chosen 7 ← pos 1, 2 ← pos 2; x rejected 8 ← pos 1 (the prompt's end), 9 ← 4, 2 ← 5
    # y chosen 2 ← pos 0; y rejected 3 ← pos 0, 2 ← pos 2 (flat index 7 + 2 = 9)
    assert batch.sources.tolist() == [1, 2, 1, 4, 5, 7, 7, 9]
    assert batch.targets.tolist() == [7, 2, 8, 9, 2, 2, 3, 2]
    assert batch.slots.tolist() == [0, 0, 2, 2, 2, 1, 3, 3]  # chosen i → i, rejected i → B + i
    assert batch.token_counts().tolist() == [2, 1, 3, 2]


def _neox() -> PreTrainedModel:
    config = GPTNeoXConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
    )
    return GPTNeoXForCausalLM(config)


def _llama() -> PreTrainedModel:
    config = LlamaConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=32,
    )  # fmt: skip
    return LlamaForCausalLM(config)


def _qwen2() -> PreTrainedModel:
    config = Qwen2Config(
        vocab_size=32, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=32,
    )  # fmt: skip
    return Qwen2ForCausalLM(config)


def _mistral() -> PreTrainedModel:
    config = MistralConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=32, sliding_window=None,
    )  # fmt: skip
    return MistralForCausalLM(config)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize(
    "build", [_neox, _llama, _qwen2, _mistral], ids=["gpt_neox", "llama", "qwen2", "mistral"]
)
def test_same_logps_and_gradients_as_the_two_row_batch(build, attention: str) -> None:
    torch.manual_seed(0)
    model = build().double()
    model.config._attn_implementation = attention
    assert supports_shared_prompt(model)
    upstream = torch.randn(6, dtype=torch.float64)  # any weighting of the 2B sums

    def run(scores) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        sums, counts = scores()
        (sums * upstream).sum().backward()
        return sums.detach(), counts, [p.grad.clone() for p in model.parameters()]

    want = run(lambda: response_logps(model, collate(PAIRS, 0)))
    got = run(lambda: shared_response_logps(model, collate_shared(PAIRS, 0)))
    torch.testing.assert_close(got[0], want[0])
    assert got[1].tolist() == want[1].tolist() == [3, 5, 2, 2, 2, 4]
    for a, b in zip(got[2], want[2], strict=True):  # the token log-probs are summed in float32
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_other_families_keep_the_two_row_batch() -> None:
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_embd=16, n_layer=1, n_head=2))
    assert not supports_shared_prompt(gpt2)  # not in the checked families
    neox = _neox()
    neox.config._attn_implementation = "flex_attention"
    assert not supports_shared_prompt(neox)  # takes no ready 4D boolean/additive mask
    windowed = MistralForCausalLM(
        MistralConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, sliding_window=8, max_position_embeddings=64)
    )  # fmt: skip
    assert not supports_shared_prompt(windowed)  # the ready mask would ignore the 8-token window
    assert supports_shared_prompt(_mistral())  # no window (Mistral v0.3 and later)


def test_sharing_keeps_the_training_trajectory_and_is_the_default() -> None:
    def run(share: bool) -> ListSink:
        sink = ListSink()
        config = small("tiny-beta-dpo", "optim.max_steps=5", f"model.share_prompt={str(share).lower()}")
        assert train(config, sink).status == "succeeded"
        return sink

    shared, plain = run(True), run(False)
    for key in (mk.TRAIN_LOSS, mk.TRAIN_GRAD_NORM, mk.TRAIN_BETA, mk.LOGPS_REJECTED, mk.BDPO_M0):
        assert values(shared, key) == pytest.approx(values(plain, key), rel=1e-5, abs=1e-6)
    assert Trainer(small("tiny-beta-dpo"), NullSink(), None).family.share_prompt
