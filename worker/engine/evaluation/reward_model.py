"""A Bradley–Terry reward model: a one-output sequence-classification head on a causal LM's body,
trained with −log σ(r_w − r_l) on preference pairs (SCIENCE.md §C.1 "RM contrast": its gradients on
r_w and r_l are balanced, unlike DPO's — training both on the same data is the 3D paper's §5.3
comparison).

The reward of (prompt, response) is the head applied to the last hidden state of the last real token
(the EOS that ends the response), right padding, so it does not depend on the pad id. The body comes
from ``RunConfig.model`` exactly as for DPO (tiny GPT-NeoX, local pretrained directory or GGUF);
data, optimizer and steps from ``data``/``optim``. The result is saved as a ``save_pretrained``
directory with safetensors weights and the tokenizer, loadable by ``RewardModelJudge``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase

from contracts import metric_keys as mk
from contracts.config import RunConfig
from contracts.events import MetricPoint, MetricsSink
from worker.engine.data.pairs import PairBatch, PairSampler, TokenizedPair, collate, load_pairs
from worker.engine.data.tokenizer import load_tokenizer
from worker.engine.model.loading import ModelLoadError, load_policy
from worker.engine.optimizers import make_optimizer, warmup_schedule


@dataclass
class RewardModelSummary:
    """How reward-model training ended: steps done, last metrics, the saved directory."""

    status: str
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    path: str | None = None


def build_reward_model(config: RunConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A fresh one-output classification model whose body is the policy of ``config.model``."""
    lm, tokenizer = load_policy(config.model, config.seed)
    cls_config = copy.deepcopy(lm.config)
    cls_config.num_labels = 1
    if hasattr(cls_config, "quantization_config"):  # a GGUF body is de-quantized: save plain float32
        del cls_config.quantization_config
    cls_config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(config.seed)
    model = AutoModelForSequenceClassification.from_config(cls_config)
    getattr(model, model.base_model_prefix).load_state_dict(getattr(lm, lm.base_model_prefix).state_dict())
    return model.float(), tokenizer


def load_reward_model(
    path: Path, device: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A saved reward model (safetensors only, local files only, never remote code) in eval mode."""
    if not path.is_dir() or not any(path.glob("*.safetensors")):
        raise ModelLoadError(f"reward model '{path}' is not a directory with .safetensors weights")
    model = AutoModelForSequenceClassification.from_pretrained(
        path, local_files_only=True, use_safetensors=True, trust_remote_code=False
    )
    if model.config.num_labels != 1:
        raise ModelLoadError(f"reward model '{path}' has {model.config.num_labels} outputs; one is needed")
    target = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not getattr(model, "is_quantized", False):
        model = model.float()
    return model.to(target).eval(), load_tokenizer(str(path))


def rewards(model: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """(B,) float32 rewards of right-padded sequences (B, T): the head on the last real token."""
    body = getattr(model, model.base_model_prefix)
    hidden = body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    last = attention_mask.sum(dim=1) - 1
    pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    return model.score(pooled).squeeze(-1).float()


def pair_rewards(model: PreTrainedModel, batch: PairBatch) -> tuple[Tensor, Tensor]:
    """(r_w, r_l), each (B,), for a PairBatch (chosen rows first)."""
    values = rewards(model, batch.input_ids, batch.attention_mask)
    return values[: batch.size], values[batch.size :]


def score_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    batch_size: int = 16,
) -> list[float]:
    """Rewards of (prompt, response) texts, tokenized as the training data is (prompt with the
    tokenizer's special tokens, response without, EOS appended); the prompt's start is cut to fit."""
    limit = int(getattr(model.config, "max_position_embeddings", 2048))
    device = next(model.parameters()).device
    eos = int(tokenizer.eos_token_id)
    sequences = []
    for prompt, response in zip(prompts, responses, strict=True):
        answer = list(tokenizer(response, add_special_tokens=False)["input_ids"])
        answer = answer if answer and answer[-1] == eos else [*answer, eos]
        sequences.append((list(tokenizer(prompt)["input_ids"]) + answer)[-limit:])
    values: list[float] = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        width = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), width), int(tokenizer.pad_token_id or 0), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, seq in enumerate(chunk):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        with torch.no_grad():
            values.extend(rewards(model, ids.to(device), mask.to(device)).tolist())
    return values


def _evaluate(
    model: PreTrainedModel, pairs: Sequence[TokenizedPair], pad_id: int, device: torch.device
) -> dict:
    """Mean BT loss and accuracy over ``pairs`` (no gradients)."""
    losses, correct = [], []
    with torch.no_grad():
        for start in range(0, len(pairs), 16):
            chosen, rejected = pair_rewards(model, collate(pairs[start : start + 16], pad_id).to(device))
            losses.append(F.softplus(rejected - chosen))
            correct.append((chosen > rejected).float())
    return {
        mk.RM_EVAL_LOSS: float(torch.cat(losses).mean()),
        mk.RM_EVAL_ACCURACY: float(torch.cat(correct).mean()),
    }


def train_reward_model(
    config: RunConfig,
    sink: MetricsSink,
    out_dir: Path,
    should_stop: Callable[[], bool] = lambda: False,
) -> RewardModelSummary:
    """Trains a BT reward model for ``config.optim.max_steps`` steps of ``optim.batch_size`` pairs and
    saves it to ``out_dir``. Emits rm/loss, rm/accuracy, rm/margin, train/lr and run/progress every
    ``log_every`` steps, and rm/eval/* on the held-out pairs at the end."""
    device = torch.device("cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu")
    sink.status("loading reward model and data", 0.0)
    model, tokenizer = build_reward_model(config)
    model = model.to(device).train()
    data = load_pairs(config.data, tokenizer)
    pad_id = int(tokenizer.pad_token_id)
    sampler = PairSampler(data.train, seed=config.seed, shuffle=config.data.shuffle)
    optimizer = make_optimizer(config.optim, model.parameters())
    scheduler = warmup_schedule(optimizer, config.optim.warmup_steps)
    optim, steps, values = config.optim, 0, {}
    accumulation = optim.batch_size // optim.micro_batch_size
    while steps < optim.max_steps and not should_stop():
        loss_sum, margins, correct = 0.0, [], []
        for _ in range(accumulation):
            batch = collate(sampler.next_micro_batch(optim.micro_batch_size), pad_id).to(device)
            chosen, rejected = pair_rewards(model, batch)
            loss = F.softplus(rejected - chosen).mean()
            (loss / accumulation).backward()
            loss_sum += float(loss.detach()) / accumulation
            margins.append((chosen - rejected).detach())
            correct.append((chosen > rejected).float())
        torch.nn.utils.clip_grad_norm_(model.parameters(), optim.max_grad_norm or float("inf"))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        steps += 1
        if steps % config.log_every == 0 or steps == optim.max_steps:
            values = {
                mk.RM_LOSS: loss_sum,
                mk.RM_ACCURACY: float(torch.cat(correct).mean()),
                mk.RM_MARGIN: float(torch.cat(margins).mean()),
                mk.TRAIN_LR: scheduler.get_last_lr()[0],
                mk.PROGRESS: steps / optim.max_steps,
            }
            _emit(sink, steps, values)
        sink.status(f"step {steps}/{optim.max_steps}", steps / optim.max_steps)
    if data.eval:
        model.eval()
        values.update(_emit(sink, steps, _evaluate(model, data.eval, pad_id, device)))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    status = "succeeded" if steps == optim.max_steps else "stopped"
    sink.status(f"reward model saved to {out_dir}", 1.0)
    return RewardModelSummary(status, steps, values, str(out_dir))


def _emit(sink: MetricsSink, step: int, values: dict[str, float]) -> dict[str, float]:
    now = time.time()
    sink.points([MetricPoint(key, step, value, now) for key, value in values.items()])
    return values
