"""A lean forward of GPT-NeoX (Pythia) base models for scoring: the same math as transformers'
``GPTNeoXModel.forward`` on the same parameters, in about half the tensor operations.

transformers' forward builds output records, cache objects and per-layer rotary tensors, and calls
each sub-module through hooks; on small models on CPU that bookkeeping, not the arithmetic, is most
of a training step. This forward runs embedding → for each layer: pre-LayerNorm attention with
partial rotary embeddings on queries and keys together, SDPA under a ready boolean mask, then the MLP
(parallel or sequential residual, as the config says) → final LayerNorm, and nothing else. It reads
the model's own modules, so checkpoints, optimizers and every other path see an ordinary Hugging Face
model. The tests check hidden states and gradients against transformers' forward.

``applies(model)`` says when it stands in: a GPT-NeoX model with default rotary embeddings, layers
not sharded by FSDP2 (their parameters are gathered by hooks on the layer's own forward, which this
one does not call), no activation checkpointing, and (in training) no dropout; anything else keeps
transformers' forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule


def applies(model: nn.Module) -> bool:
    """True when ``hidden_states`` computes exactly what ``model``'s base transformer would."""
    if getattr(getattr(model, "config", None), "model_type", None) != "gpt_neox":
        return False
    base = model.gpt_neox
    rotary = base.rotary_emb
    if getattr(rotary, "rope_type", "default") != "default" or rotary.attention_scaling != 1.0:
        return False
    if 2 * rotary.inv_freq.numel() > base.config.hidden_size // base.config.num_attention_heads:
        return False
    if any(isinstance(layer, FSDPModule) for layer in base.layers):
        return False
    if not model.training:  # checkpointing and dropout act only in training
        return True
    for layer in base.layers:
        rates = (layer.post_attention_dropout.p, layer.post_mlp_dropout.p, layer.attention.attention_dropout)
        if getattr(layer, "gradient_checkpointing", False) or any(rates):
            return False
    return not base.emb_dropout.p


def hidden_states(model: nn.Module, input_ids: Tensor, allowed: Tensor, position_ids: Tensor) -> Tensor:
    """Final-LayerNorm hidden states (B, T, H) of ``model.gpt_neox``.

    input_ids, position_ids: (B, T) long; allowed: (B, 1, T, T) bool, True where query t may attend
    to key s (every query must be allowed at least one key).
    """
    base = model.gpt_neox
    rows, width = input_ids.shape
    heads = base.config.num_attention_heads
    head_size = base.config.hidden_size // heads
    cos, sin = _rotary(base.rotary_emb.inv_freq, position_ids)
    rotary = cos.shape[-1]
    hidden = F.embedding(input_ids, base.embed_in.weight)
    for layer in base.layers:
        attention = layer.attention
        qkv = attention.query_key_value(_norm(layer.input_layernorm, hidden))
        qkv = qkv.view(rows, width, heads, 3 * head_size).transpose(1, 2)  # (B, heads, T, 3·head)
        query_key = qkv[..., : 2 * head_size].unflatten(-1, (2, head_size))  # (B, heads, T, 2, head)
        turned = query_key[..., :rotary]
        turned = turned * cos + torch.roll(turned, rotary // 2, dims=-1) * sin
        if rotary < head_size:
            turned = torch.cat((turned, query_key[..., rotary:]), dim=-1)
        mixed = F.scaled_dot_product_attention(
            turned[..., 0, :],
            turned[..., 1, :],
            qkv[..., 2 * head_size :],
            attn_mask=allowed,
            scale=attention.scaling,
        )
        attended = attention.dense(mixed.transpose(1, 2).reshape(rows, width, -1))
        mlp = layer.mlp
        if layer.use_parallel_residual:
            hidden = _mlp(mlp, _norm(layer.post_attention_layernorm, hidden)) + attended + hidden
        else:
            attended = attended + hidden
            hidden = _mlp(mlp, _norm(layer.post_attention_layernorm, attended)) + attended
    return _norm(base.final_layer_norm, hidden)


def _rotary(inv_freq: Tensor, position_ids: Tensor) -> tuple[Tensor, Tensor]:
    """cos and signed sin (B, 1, T, 1, R) in float32 such that ``x·cos + roll(x, R/2)·sin`` equals
    transformers' ``x·cos + rotate_half(x)·sin`` on the R rotary dimensions."""
    freqs = position_ids.unsqueeze(-1).float() * inv_freq.float()  # (B, T, R/2)
    sin = freqs.sin()
    cos = freqs.cos().repeat(1, 1, 2)
    signed = torch.cat((-sin, sin), dim=-1)
    return cos[:, None, :, None, :], signed[:, None, :, None, :]


def _norm(norm: nn.LayerNorm, hidden: Tensor) -> Tensor:
    return F.layer_norm(hidden, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _mlp(mlp: nn.Module, hidden: Tensor) -> Tensor:
    return mlp.dense_4h_to_h(mlp.act(mlp.dense_h_to_4h(hidden)))
