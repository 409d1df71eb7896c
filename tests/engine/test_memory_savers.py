"""The two memory savers of the engine: the chunked language-model head (worker/engine/model/head_logps.py)
and gradient checkpointing (``model.gradient_checkpointing``). Both must change memory only: the same
log-probs, the same gradients, the same training trajectory."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from contracts import metric_keys as mk
from contracts.config import ModelConfig
from tests.engine.test_loop import small, values
from worker.engine.loop import train
from worker.engine.model import head_logps
from worker.engine.model.loading import load_policy
from worker.engine.sinks import ListSink


def _plain(hidden: torch.Tensor, head: nn.Linear, targets: torch.Tensor) -> torch.Tensor:
    logits = head(hidden).float()
    return torch.log_softmax(logits, dim=1).gather(1, targets.unsqueeze(1)).squeeze(1)


def _grads(fn, hidden: torch.Tensor, head: nn.Linear, targets: torch.Tensor, upstream: torch.Tensor):
    hidden = hidden.clone().requires_grad_(True)
    head.zero_grad(set_to_none=True)
    out = fn(hidden, head, targets)
    (out * upstream).sum().backward()
    return out.detach(), hidden.grad, head.weight.grad.clone()


@pytest.mark.parametrize("keep_bytes", [0, 2**20], ids=["recomputed-softmax", "kept-softmax"])
def test_chunked_head_equals_full_logits_in_value_and_gradient(
    monkeypatch: pytest.MonkeyPatch, keep_bytes: int
) -> None:
    torch.manual_seed(0)
    head = nn.Linear(16, 50, bias=False).double()
    hidden = torch.randn(23, 16, dtype=torch.float64)
    targets = torch.randint(0, 50, (23,))
    upstream = torch.randn(23, dtype=torch.float64)  # any downstream weighting of the token log-probs
    # 50 classes × 4 bytes × 5 rows = 1000 bytes: chunks of 5 rows, the last one of 3
    monkeypatch.setattr(head_logps, "CHUNK_BYTES", 1000)
    monkeypatch.setattr(head_logps, "KEEP_BYTES", keep_bytes)  # 23 × 50 × 4 = 4,600 bytes of softmax
    assert head_logps.chunk_rows(50) == 5
    want = _grads(_plain, hidden, head, targets, upstream)
    got = _grads(head_logps.token_logps, hidden, head, targets, upstream)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.double(), b.double(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("keep", [False, True], ids=["recomputed-softmax", "kept-softmax"])
def test_chunked_head_passes_gradcheck(keep: bool) -> None:
    torch.manual_seed(1)
    hidden = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 9, (7,))

    def fn(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return head_logps._ChunkedHeadLogps.apply(h, w, targets, 3, keep).double()

    # the forward accumulates in float32: gradcheck's finite differences need a loose tolerance
    assert torch.autograd.gradcheck(fn, (hidden, weight), eps=1e-3, atol=1e-2, rtol=1e-2)


def test_small_heads_take_the_plain_path() -> None:
    # tiny vocabulary (512): 32 MiB / (4 × 512) = 16,384 rows per chunk, more than any tiny batch
    assert head_logps.chunk_rows(512) == 16_384
    # SmolLM2 (49,152): 170 rows per chunk, i.e. 32 MiB of logits at a time
    assert head_logps.chunk_rows(49_152) == 170


def test_checkpointing_and_chunked_head_keep_the_trajectory(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(checkpointing: bool) -> ListSink:
        sink = ListSink()
        flag = str(checkpointing).lower()
        config = small("tiny-beta-dpo", "optim.max_steps=5", f"model.gradient_checkpointing={flag}")
        assert train(config, sink).status == "succeeded"
        return sink

    plain = run(False)
    checkpointed = run(True)
    monkeypatch.setattr(head_logps, "CHUNK_BYTES", 4 * 512 * 7)  # chunks of 7 response tokens
    chunked = run(False)
    for key in (mk.TRAIN_LOSS, mk.TRAIN_GRAD_NORM, mk.TRAIN_BETA, mk.LOGPS_REJECTED):
        assert values(checkpointed, key) == pytest.approx(values(plain, key), rel=1e-5, abs=1e-6)
        assert values(chunked, key) == pytest.approx(values(plain, key), rel=1e-5, abs=1e-6)
    assert values(plain, mk.TRAIN_LOSS)[-1] != values(plain, mk.TRAIN_LOSS)[0]  # it trained


def test_the_flag_turns_checkpointing_on() -> None:
    model, _ = load_policy(ModelConfig(source="tiny", gradient_checkpointing=True), seed=0)
    assert _checkpointed_layers(model) == 2  # the tiny preset's 2 layers
    model, _ = load_policy(ModelConfig(source="tiny"), seed=0)
    assert _checkpointed_layers(model) == 0


def test_every_second_layer_is_checkpointed_on_request() -> None:
    spec = {"num_layers": 4}
    config = ModelConfig(source="tiny", tiny=spec, gradient_checkpointing=True, checkpoint_every_n_layers=2)
    model, _ = load_policy(config, seed=0)
    assert _checkpointed_layers(model) == 2  # of 4
    with pytest.raises(ValueError, match=r"checkpoint_every_n_layers needs model\.gradient_checkpointing"):
        ModelConfig(source="tiny", checkpoint_every_n_layers=2)


def _checkpointed_layers(model: nn.Module) -> int:
    return sum(bool(getattr(layer, "gradient_checkpointing", False)) for layer in model.gpt_neox.layers)


def test_gradient_checkpointing_is_refused_for_the_toy() -> None:
    with pytest.raises(ValidationError, match="gradient_checkpointing applies to language models"):
        ModelConfig(source="toy", gradient_checkpointing=True)
