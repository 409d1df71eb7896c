"""The peer side of bench/train_step.py: TRL's DPOTrainer on the same model, pairs, batch and length.

The pairs are the ones our engine trains on (``load_pairs`` of the same DataConfig, in the same order),
handed to TRL as prompt/chosen/rejected strings: the original texts, or, where our engine cut a row,
the text of what it kept (TRL 1.16 has no prompt length of its own, only ``max_length`` with
``keep_start``). TRL's sequential sampler then sees the same micro-batches as our unshuffled sampler.
Reference log-probs are precomputed by TRL (``precompute_ref_log_probs``), before the timed steps.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
)

from bench._gpu import synchronize, trl_best_settings
from contracts.config import RunConfig
from worker.engine.data.pairs import TokenizedPair, load_pairs
from worker.engine.model.loading import SMOLLM2_FILE, load_policy, smollm2_dir


class StepClock(TrainerCallback):
    """Records ``time.perf_counter()`` at the end of every optimizer step (after the update); calls
    ``first_step_done`` once, before the first reading."""

    def __init__(self, first_step_done: Callable[[], None]) -> None:
        self.ends: list[float] = []
        self._first_step_done = first_step_done

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.ends:
            self._first_step_done()
        synchronize()
        self.ends.append(time.perf_counter())


def peer_model(config: RunConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The policy as TRL users would get it: GGUF through ``from_pretrained(dir, gguf_file=...)``; the
    tiny GPT-NeoX built from its config with our seed (so both sides start from the same weights)."""
    if config.model.source != "gguf":
        return load_policy(config.model, config.seed)
    folder = Path(config.model.path) if config.model.path else smollm2_dir()
    name = config.model.gguf_file or SMOLLM2_FILE
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32, local_files_only=True
    )
    return unmark_gguf(model), tokenizer


def unmark_gguf(model: PreTrainedModel) -> PreTrainedModel:
    """transformers 5 flags a GGUF-loaded model as quantized (``GgufHfQuantizer``, not trainable)
    although its weights are dequantized float32 tensors: ``Trainer`` then refuses to train it and
    ``model.float()`` raises. Clears the flag (load time only; the weights are untouched)."""
    model.is_quantized = False
    model.hf_quantizer = None
    return model


def peer_texts(pairs: list[TokenizedPair], tokenizer: PreTrainedTokenizerBase) -> dict[str, list[str]]:
    """prompt/chosen/rejected columns: each text as ours saw it (decoded from our ids where cut)."""

    def decode(ids: tuple[int, ...]) -> str:
        return tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    columns: dict[str, list[str]] = {"prompt": [], "chosen": [], "rejected": []}
    eos = tokenizer.eos_token_id
    for pair in pairs:
        full_prompt = tokenizer(pair.prompt_text)["input_ids"]
        kept_whole = len(full_prompt) == len(pair.prompt_ids)
        columns["prompt"].append(pair.prompt_text if kept_whole else decode(pair.prompt_ids))
        for key, text, ids in (
            ("chosen", pair.chosen_text, pair.chosen_ids),
            ("rejected", pair.rejected_text, pair.rejected_ids),
        ):
            columns[key].append(text if ids[-1] == eos else decode(ids))
    return columns


def _dpo_config(config: RunConfig, total_steps: int, output_dir: str, best: dict[str, Any]) -> Any:
    from trl import DPOConfig

    optim = config.optim
    fields = {
        "precompute_ref_log_probs": True,
        "bf16": config.device == "cuda",
        "gradient_checkpointing": False,
        **best,
    }
    return DPOConfig(
        output_dir=output_dir,
        per_device_train_batch_size=optim.micro_batch_size,
        gradient_accumulation_steps=optim.grad_accum,
        max_steps=total_steps,
        learning_rate=optim.lr,
        optim="adamw_torch",
        weight_decay=optim.weight_decay,
        max_grad_norm=optim.max_grad_norm or 0.0,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=optim.warmup_steps,
        beta=config.loss.beta,
        loss_type=["sigmoid"],
        max_length=config.data.max_length,
        truncation_mode="keep_start",
        fp16=False,
        use_cpu=config.device != "cuda",
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="sequential",
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        dataloader_drop_last=False,
        logging_strategy="no",
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        **fields,
    )


def _token_ratio(trainer: Any, pairs: list[TokenizedPair], max_length: int) -> float:
    """Tokens TRL forwards per token ours forwards (prompt counted in both rows), over all pairs."""
    ours = sum(2 * len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)
    data = trainer.train_dataset
    columns = (data["prompt_ids"], data["chosen_ids"], data["rejected_ids"])
    theirs = 0
    for prompt, chosen, rejected in zip(*columns, strict=True):
        theirs += min(len(prompt) + len(chosen), max_length) + min(len(prompt) + len(rejected), max_length)
    return theirs / max(ours, 1)


def _lora_config() -> Any:
    """TRL's LoRA: peft's config handed to DPOTrainer (the same shape as ours: r 16, all linear layers)."""
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")


def measure_trl(
    config: RunConfig,
    first_step_done: Callable[[], None],
    best: bool = False,
    lora: bool = False,
    checkpointing: bool = False,
) -> dict[str, Any]:
    """TRL's DPOTrainer for ``config.optim.max_steps`` steps: the clock reading at the end of every
    step (``ends``), tokens per our token, pairs, and the versions measured. best: TRL's fastest
    settings on the device (bench/_gpu.py: bf16 weights, padding-free and Liger where they apply);
    lora: peft adapters (``_lora_config``); checkpointing: gradient checkpointing."""

    import datasets
    import trl
    from trl import DPOTrainer

    datasets.disable_progress_bars()
    settings = trl_best_settings(config.device) if best else {"fields": {}, "notes": {}}
    if checkpointing:
        settings["fields"]["gradient_checkpointing"] = True
    model, tokenizer = peer_model(config)
    if best and config.device == "cuda":
        model = model.to(torch.bfloat16)
        if settings["fields"].get("padding_free"):
            model.config._attn_implementation = "flash_attention_2"
    pairs = load_pairs(config.data, tokenizer).train
    dataset = datasets.Dataset.from_dict(peer_texts(pairs, tokenizer))
    clock = StepClock(first_step_done)
    with tempfile.TemporaryDirectory(prefix="alignscope-bench-trl-") as output_dir:
        trainer = DPOTrainer(
            model=model,
            args=_dpo_config(config, config.optim.max_steps, output_dir, settings["fields"]),
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[clock],
            peft_config=_lora_config() if lora else None,
        )
        trainer.train()
    return {
        "ends": clock.ends,
        "token_ratio": _token_ratio(trainer, pairs, config.data.max_length),
        "tokens_per_pair": sum(2 * len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)
        / max(len(pairs), 1),
        "pairs": len(pairs),
        "versions": {"trl": trl.__version__, "torch": torch.__version__},
        "peer_settings": settings["notes"],
    }
