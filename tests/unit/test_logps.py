"""Sequence log-probabilities: the causal shift, the prompt/pad mask, float32 output, gradients."""

import math

import pytest
import torch

from worker.alignment.logps import sequence_logps, token_logps

IGNORE = -100


def test_hand_computed_sum_and_count() -> None:
    # Vocabulary of 2. Position 0 logits [0, 0] → p = [1/2, 1/2];
    # position 1 logits [ln 3, 0] → p = [3/4, 1/4].
    # labels [-100, 0, 1]: after the shift, position 0 predicts token 0 (log 1/2) and position 1 predicts
    # token 1 (log 1/4); position 2's logits predict nothing. Sum = log(1/8) = −2.0794415, 2 tokens.
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[IGNORE, 0, 1]])
    logps, tokens = sequence_logps(logits, labels)
    assert logps.dtype == torch.float32 and tokens.dtype == torch.long
    assert logps.item() == pytest.approx(math.log(1 / 8), abs=1e-6)
    assert tokens.tolist() == [2]


def test_prompt_and_padding_are_masked() -> None:
    # Row 0: prompt, one response token (label 1 predicted from [0, ln 3] → p(1) = 3/4), then padding.
    # Row 1: everything ignored → sum 0, count 0.
    logits = torch.tensor(
        [
            [[0.0, math.log(3.0)], [9.0, 9.0], [1.0, 2.0]],
            [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
        ]
    )
    labels = torch.tensor([[IGNORE, 1, IGNORE], [IGNORE, IGNORE, IGNORE]])
    logps, tokens = sequence_logps(logits, labels)
    assert logps.tolist() == pytest.approx([math.log(3 / 4), 0.0], abs=1e-6)
    assert tokens.tolist() == [1, 0]


def test_custom_ignore_index() -> None:
    # Same as the first test with the ignore marker −1: log(1/2) + log(1/4) = log(1/8).
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[-1, 0, 1]])
    logps, tokens = sequence_logps(logits, labels, ignore_index=-1)
    assert logps.item() == pytest.approx(math.log(1 / 8), abs=1e-6)
    assert tokens.item() == 2


def test_matches_log_softmax_reference_on_random_batch() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 11, (3, 7), generator=generator)
    labels[0, :3] = IGNORE
    labels[1, 5:] = IGNORE
    reference = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(
        -1, labels[:, 1:].clamp_min(0).unsqueeze(-1)
    )
    mask = labels[:, 1:] != IGNORE
    expected = (reference.squeeze(-1) * mask).sum(-1)
    logps, tokens = sequence_logps(logits, labels)
    torch.testing.assert_close(logps, expected)
    assert tokens.tolist() == mask.sum(-1).tolist()


def test_bfloat16_logits_give_float32_sums() -> None:
    logits = torch.zeros(1, 3, 4, dtype=torch.bfloat16)  # uniform over 4 → each token log(1/4)
    labels = torch.tensor([[IGNORE, 2, 3]])
    logps, _ = sequence_logps(logits, labels)
    assert logps.dtype == torch.float32
    assert logps.item() == pytest.approx(2 * math.log(1 / 4), abs=1e-6)


def test_gradient_is_onehot_minus_softmax_on_response_positions() -> None:
    # ∂ log p_k / ∂z_j = 1[j=k] − p_j; uniform p over 2 tokens → [1/2, −1/2] for label 0; masked rows get 0.
    logits = torch.zeros(1, 3, 2, requires_grad=True)
    labels = torch.tensor([[IGNORE, 0, IGNORE]])
    logps, _ = sequence_logps(logits, labels)
    logps.sum().backward()
    expected = torch.tensor([[[0.5, -0.5], [0.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(logits.grad, expected)


def test_token_logps_zero_where_masked() -> None:
    logits = torch.zeros(1, 3, 4)
    labels = torch.tensor([[IGNORE, IGNORE, 1]])
    logps, mask = token_logps(logits, labels)
    assert mask.tolist() == [[False, True]]
    assert logps[0].tolist() == pytest.approx([0.0, math.log(1 / 4)])


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="expected logits"):
        sequence_logps(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
