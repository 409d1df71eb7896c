"""Per-token log-probs through the language-model head without keeping the (tokens × vocabulary) logits.

``log π(y_t | x, y_<t) = h_t · w_{y_t} − logsumexp_v(h_t · w_v)`` for the M response positions. The
plain autograd graph keeps the (M, V) float32 logits for the backward pass and allocates two more
(M, V) tensors in it (the softmax and the logits' gradient): for SmolLM2 (V = 49,152) and a batch of
8 pairs × 96 response tokens that is 3 × 151 MB. ``token_logps`` instead runs the head in chunks of
rows, so at most one chunk of logits (``CHUNK_BYTES``) is alive at a time. For the backward pass it
keeps the float32 softmax of all M rows when that fits in ``KEEP_BYTES`` (one (M, V) tensor instead of
three); otherwise it keeps nothing and recomputes each chunk's logits there (one extra head matmul,
4-5 % of a SmolLM2 step on 2 CPU cores). Small heads (the tiny models: V = 512) take the plain path,
where the bookkeeping would cost more than it saves.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

CHUNK_BYTES = 32 * 2**20  # float32 logits per chunk
KEEP_BYTES = 256 * 2**20  # float32 softmax of all M rows kept for the backward pass, at most


def token_logps(hidden: Tensor, head: nn.Module, targets: Tensor) -> Tensor:
    """Log-probs (M,) in float32 nats of ``targets`` (M,) under ``head`` applied to ``hidden`` (M, H).

    ``head`` is the model's output embedding (``nn.Linear``, V × H weight). Equals
    ``log_softmax(head(hidden).float())[range(M), targets]`` with the same gradients.
    """
    weight = getattr(head, "weight", None)
    rows = chunk_rows(weight.shape[0]) if isinstance(head, nn.Linear) and weight is not None else 0
    if rows == 0 or hidden.shape[0] <= rows or getattr(head, "bias", None) is not None:
        logits = head(hidden).float()
        return logits.gather(1, targets.unsqueeze(1)).squeeze(1) - torch.logsumexp(logits, dim=1)
    keep = torch.is_grad_enabled() and 4 * hidden.shape[0] * weight.shape[0] <= KEEP_BYTES
    return _ChunkedHeadLogps.apply(hidden, head.weight, targets, rows, keep)


def chunk_rows(vocabulary: int) -> int:
    """Rows per chunk so that one chunk's float32 logits take at most ``CHUNK_BYTES``."""
    return max(1, CHUNK_BYTES // (4 * vocabulary))


class _ChunkedHeadLogps(torch.autograd.Function):
    """Chunked head + log-softmax + gather; the backward pass reads the kept softmax or recomputes
    each chunk's logits (see module doc).

    Matmuls run in ``hidden``'s dtype (bf16 under CUDA autocast, as the head's ``nn.Linear`` would),
    the softmax in float32; the weight's gradient is returned in the weight's dtype.
    """

    @staticmethod
    def forward(ctx: Any, hidden: Tensor, weight: Tensor, targets: Tensor, rows: int, keep: bool) -> Tensor:
        cast = weight.to(hidden.dtype)
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        kept = (
            torch.empty(hidden.shape[0], weight.shape[0], dtype=torch.float32, device=hidden.device)
            if keep
            else None
        )
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], rows):
                logits = (hidden[start : start + rows] @ cast.t()).float()
                picked = logits.gather(1, targets[start : start + rows].unsqueeze(1)).squeeze(1)
                normalizer = torch.logsumexp(logits, dim=1)
                out[start : start + rows] = picked - normalizer
                if kept is not None:
                    torch.exp(logits.sub_(normalizer.unsqueeze(1)), out=kept[start : start + rows])
        ctx.save_for_backward(hidden, weight, targets, *([] if kept is None else [kept]))
        ctx.rows = rows
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None, None, None]:
        hidden, weight, targets, *kept = ctx.saved_tensors
        rows = ctx.rows
        cast = weight.to(hidden.dtype)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], rows):
                chunk = hidden[start : start + rows]
                upstream = grad_out[start : start + rows].float()
                if kept:
                    softmax = kept[0][start : start + rows]
                else:
                    softmax = torch.softmax((chunk @ cast.t()).float(), dim=1)
                # d out_i / d logit_iv = 1[v = y_i] − softmax_iv, times the upstream gradient
                grad_logits = softmax.mul(-upstream.unsqueeze(1))
                del softmax
                local = torch.arange(chunk.shape[0], device=chunk.device)
                grad_logits[local, targets[start : start + rows]] += upstream
                grad_logits = grad_logits.to(hidden.dtype)
                if grad_hidden is not None:
                    grad_hidden[start : start + rows] = grad_logits @ cast
                if grad_weight is not None:
                    grad_weight += (grad_logits.t() @ chunk).to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None
