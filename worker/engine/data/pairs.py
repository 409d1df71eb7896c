"""From preference rows to token batches.

Sources (``DataConfig.source``): ``file`` reads ``path`` with ``contracts.pairs.read_rows``;
``bundled`` reads the sample shipped in the package the same way (``worker.engine.data.bundled``);
``constructed`` builds pairs (``worker.engine.data.constructed``); ``hub`` calls
``datasets.load_dataset(name, split=...)`` where ``path`` is ``"name"`` or ``"name:split"`` (split
``train`` by default, ``test`` for ``eval_path``); ``toy`` has no token pairs (the toy model builds its
own). ``max_rows`` caps the records read from each source.

Malformed rows: training runs on the valid rows and every problem is reported in ``DataStats``; a
``DatasetError`` is raised only when no row is valid (or none is left after tokenization). One bad row
in a large file should not cost a run, but it must be visible.

Rendering: plain-text rows are used as they are (the prompt is encoded with the tokenizer's own special
tokens, e.g. a BOS where the model expects one; responses without). Conversational rows go through
``tokenizer.apply_chat_template``: the prompt with ``add_generation_prompt=True``, the response text is
what the full conversation (prompt + assistant turn) adds after that prompt text; both are encoded
without extra special tokens (the template has them).

Tokenization (SCIENCE.md §A.1): prompt tokens, then response tokens, EOS appended to each response
(unless it already ends with EOS). Truncation: the prompt keeps its LAST ``max_prompt_length`` tokens;
each response then keeps its FIRST ``max_length − len(prompt)`` tokens (so a cut response loses its
EOS). A row with anything cut counts as truncated. A row whose response is empty, or whose chosen and
rejected become identical after the cut (no preference signal left), is dropped and counted.
Duplicate pairs (same ``pair_id``) are kept once; a training pair also in the eval set is removed
from training.

Eval split: ``eval_path`` (read like ``path``) when given, and then ``eval_fraction`` is ignored;
otherwise the ``round(eval_fraction · N)`` pairs (at least 1) with the smallest ``pair_id`` — a
content hash — are held out. The split depends on the data only, so runs with different seeds are
evaluated on the same pairs.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from contracts.config import DataConfig
from contracts.pairs import (
    DatasetError,
    PreferenceRow,
    RowProblem,
    ValidationReport,
    read_rows,
    validate_records,
)
from worker.engine.data.bundled import bundled_path
from worker.engine.data.constructed import constructed_rows
from worker.engine.data.label_noise import plant_label_noise

IGNORE_INDEX = -100
SHOWN_PROBLEMS = 5
IDENTICAL_AFTER_CUT = "same tokens as chosen after tokenization and truncation — raise data.max_length"


@dataclass(frozen=True, slots=True)
class TokenizedPair:
    """One pair ready for collation. *_ids are truncated token ids (responses end with EOS unless
    cut); *_text are the full rendered texts (before truncation), for display."""

    pair_id: str
    prompt_ids: tuple[int, ...]
    chosen_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    prompt_text: str
    chosen_text: str
    rejected_text: str


@dataclass(frozen=True, slots=True)
class DataStats:
    """rows: records read (train and eval sources); invalid: rows with problems; truncated/dropped:
    rows cut or dropped by tokenization; duplicates: repeated pairs removed; problems: every
    RowProblem, validation and drops alike."""

    rows: int
    invalid: int
    truncated: int
    dropped: int
    duplicates: int
    detected_format: str
    problems: list[RowProblem]


@dataclass(frozen=True, slots=True)
class LoadedData:
    """Training and eval pairs, each in source order, and what happened on the way. ``planted`` is for
    the pair texts' record only (label_noise.py): the trainer takes ``train`` and ``eval``."""

    train: list[TokenizedPair]
    eval: list[TokenizedPair]
    stats: DataStats
    planted: frozenset[str] = frozenset()  # ids of training pairs flipped by data.label_noise


@dataclass
class _Tally:
    rows: int = 0
    invalid: int = 0
    truncated: int = 0
    dropped: int = 0
    duplicates: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    def add_report(self, report: ValidationReport) -> None:
        self.rows += report.rows
        self.invalid += report.invalid
        self.problems.extend(report.problems)


def load_pairs(config: DataConfig, tokenizer: PreTrainedTokenizerBase) -> LoadedData:
    """Read, validate, render, tokenize, deduplicate and split the data of ``config``.
    Raises DatasetError when no valid pair is left for training."""
    if tokenizer.eos_token_id is None:
        raise DatasetError("the tokenizer has no eos token — responses must end with EOS (SCIENCE.md §A.1)")
    if config.source == "toy":
        raise DatasetError("data.source 'toy' has no token pairs: the toy model builds its own 16 pairs")
    tally = _Tally()
    rows, detected = _read(config.source, config, config.path, "train", tally)
    pairs = _tokenize_all(rows, tokenizer, config, tally)
    if config.eval_path:
        kind = "hub" if config.source == "hub" else "file"
        eval_rows, _ = _read(kind, config, config.eval_path, "test", tally)
        held_out = _tokenize_all(eval_rows, tokenizer, config, tally)
    else:
        held_out = _eval_split(pairs, config.eval_fraction)
    eval_ids = {pair.pair_id for pair in held_out}
    train = [pair for pair in pairs if pair.pair_id not in eval_ids]
    if config.eval_path:  # training pairs that are also in the eval file are duplicates
        tally.duplicates += len(pairs) - len(train)
    if not train:
        shown = "".join(f"\n  {problem}" for problem in tally.problems[:SHOWN_PROBLEMS])
        raise DatasetError(f"no training pairs left from {_source_label(config)}{shown}")
    stats = DataStats(
        tally.rows, tally.invalid, tally.truncated, tally.dropped, tally.duplicates, detected, tally.problems
    )
    if config.label_noise:
        train, planted = plant_label_noise(train, config.label_noise, config.label_noise_seed)
        return LoadedData(train, held_out, stats, planted)
    return LoadedData(train, held_out, stats)


def _source_label(config: DataConfig) -> str:
    if config.source == "bundled":
        return f"the bundled sample '{config.bundled}'"
    return config.path or "constructed data"


def _read(
    kind: str, config: DataConfig, path: str | None, split: str, tally: _Tally
) -> tuple[list[PreferenceRow], str]:
    """Valid rows of one source and the detected format (``kind`` is a DataConfig.source value)."""
    if kind == "constructed":
        rows = constructed_rows(config.constructed)[: config.max_rows]
        tally.rows += len(rows)
        return rows, "standard"
    if kind == "hub":
        records = _hub_records(str(path), split, config.max_rows)
        rows, report = validate_records(records, f"hub:{path}", config.format)
    else:
        if kind == "bundled":
            path = str(bundled_path(config.bundled))
        rows, report = read_rows(str(path), config.format, config.max_rows)
    tally.add_report(report)
    return rows, report.detected_format


def _hub_records(spec: str, default_split: str, max_rows: int | None) -> Iterable[tuple[int, Any]]:
    import datasets

    name, _, split = spec.partition(":")
    try:
        dataset = datasets.load_dataset(name, split=split or default_split)
    except Exception as error:
        hint = "check the name, the split and the network"
        raise DatasetError(f"hub dataset {spec!r} could not be loaded ({error}) — {hint}") from error
    return islice(enumerate(dataset, start=1), max_rows)


def _eval_split(pairs: list[TokenizedPair], fraction: float) -> list[TokenizedPair]:
    if fraction <= 0 or len(pairs) < 2:
        return []
    count = min(max(1, round(fraction * len(pairs))), len(pairs) - 1)
    chosen_ids = set(sorted(pair.pair_id for pair in pairs)[:count])
    return [pair for pair in pairs if pair.pair_id in chosen_ids]


# ------------------------------------------------------------------------------------- tokenization


def _tokenize_all(
    rows: Sequence[PreferenceRow], tokenizer: PreTrainedTokenizerBase, config: DataConfig, tally: _Tally
) -> list[TokenizedPair]:
    conversational = any(row.format == "conversational" for row in rows)
    if conversational and not getattr(tokenizer, "chat_template", None):
        raise DatasetError("conversational data needs a tokenizer with a chat template — set one")
    pairs: list[TokenizedPair] = []
    seen: set[str] = set()
    for row in rows:
        try:
            pair, truncated = tokenize_row(row, tokenizer, config.max_length, config.max_prompt_length)
            problem = RowProblem(row.source, row.line, "rejected", IDENTICAL_AFTER_CUT)
        except DatasetError as error:
            pair, truncated = None, False
            problem = RowProblem(row.source, row.line, "template", str(error))
        tally.truncated += truncated
        if pair is None:
            tally.dropped += 1
            tally.problems.append(problem)
        elif pair.pair_id in seen:
            tally.duplicates += 1
        else:
            seen.add(pair.pair_id)
            pairs.append(pair)
    return pairs


def tokenize_row(
    row: PreferenceRow, tokenizer: PreTrainedTokenizerBase, max_length: int, max_prompt_length: int
) -> tuple[TokenizedPair | None, bool]:
    """Render and tokenize one row with the truncation policy of the module docstring.
    Returns (pair or None when dropped, whether anything was cut). DatasetError if a conversational
    row cannot be rendered with the tokenizer's chat template."""
    prompt_text, chosen_text, rejected_text = render_texts(row, tokenizer)
    plain = row.format != "conversational"
    full_prompt = tokenizer(prompt_text, add_special_tokens=plain)["input_ids"]
    prompt_ids = full_prompt[-max_prompt_length:]
    budget = max_length - len(prompt_ids)
    full_chosen = _response_ids(chosen_text, tokenizer)
    full_rejected = _response_ids(rejected_text, tokenizer)
    chosen_ids, rejected_ids = full_chosen[:budget], full_rejected[:budget]
    truncated = len(prompt_ids) < len(full_prompt) or budget < max(len(full_chosen), len(full_rejected))
    if not chosen_ids or not rejected_ids or chosen_ids == rejected_ids:
        return None, truncated
    pair = TokenizedPair(
        row.pair_id,
        tuple(prompt_ids),
        tuple(chosen_ids),
        tuple(rejected_ids),
        prompt_text,
        chosen_text,
        rejected_text,
    )
    return pair, truncated


def _response_ids(text: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids if ids and ids[-1] == tokenizer.eos_token_id else [*ids, tokenizer.eos_token_id]


def render_texts(row: PreferenceRow, tokenizer: PreTrainedTokenizerBase) -> tuple[str, str, str]:
    """(prompt, chosen, rejected) as text; conversational rows through the chat template."""
    if row.format != "conversational":
        return str(row.prompt), str(row.chosen), str(row.rejected)
    if not getattr(tokenizer, "chat_template", None):
        raise DatasetError("conversational data needs a tokenizer with a chat template — set one")
    prompt = tokenizer.apply_chat_template(row.prompt, tokenize=False, add_generation_prompt=True)
    responses = []
    for turn in (row.chosen, row.rejected):
        full = tokenizer.apply_chat_template([*row.prompt, *turn], tokenize=False)
        if not full.startswith(prompt):
            message = "the chat template renders the prompt differently inside the conversation"
            raise DatasetError(f"{message} — use a template whose prompt is a prefix of the whole")
        responses.append(full[len(prompt) :])
    return prompt, responses[0], responses[1]


# --------------------------------------------------------------------------------------- batching


@dataclass
class PairBatch:
    """One concatenated forward: rows 0..B−1 are prompt+chosen, rows B..2B−1 prompt+rejected.

    input_ids, attention_mask, labels: (2B, T) long, right-padded with the pad id / 0 / −100.
    labels equal input_ids on response tokens and −100 on prompt and pad; they are NOT shifted (the
    log-prob code compares logits[:, :-1] with labels[:, 1:]). pair_ids: B ids; size: B.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    pair_ids: list[str]
    size: int

    def to(self, device: torch.device | str) -> PairBatch:
        """The same batch with its tensors on ``device``."""
        tensors = (self.input_ids, self.attention_mask, self.labels)
        moved = [tensor.to(device, non_blocking=True) for tensor in tensors]
        return PairBatch(*moved, pair_ids=self.pair_ids, size=self.size)

    def token_counts(self) -> torch.Tensor:
        """Response tokens scored per row (2B,) long: the labelled positions after the first."""
        return self.labels[:, 1:].ne(IGNORE_INDEX).sum(dim=1)


def collate(pairs: Sequence[TokenizedPair], pad_id: int) -> PairBatch:
    """Stack B pairs into a PairBatch of width T = the longest prompt+response of the 2B rows."""
    if not pairs:
        raise ValueError("collate needs at least one pair")
    sequences = [(p.prompt_ids, p.chosen_ids) for p in pairs]
    sequences += [(p.prompt_ids, p.rejected_ids) for p in pairs]
    # one flat tensor of every row's tokens, scattered by a (2B, T) mask: a handful of tensor ops
    # instead of two per row (per-op overhead dominated small models' steps)
    ends = torch.tensor([len(prompt) + len(response) for prompt, response in sequences])
    starts = torch.tensor([len(prompt) for prompt, _ in sequences])
    flat = torch.tensor([token for prompt, response in sequences for token in (*prompt, *response)])
    positions = torch.arange(int(ends.max()))
    filled = positions < ends.unsqueeze(1)
    input_ids = torch.full(filled.shape, pad_id, dtype=torch.long)
    input_ids[filled] = flat  # row-major order of the mask = the order of ``flat``
    labels = input_ids.masked_fill(~filled | (positions < starts.unsqueeze(1)), IGNORE_INDEX)
    attention_mask = filled.long()
    return PairBatch(input_ids, attention_mask, labels, [p.pair_id for p in pairs], len(pairs))


def batch_token_count(batch: PairBatch) -> int:
    """Non-pad tokens in the batch (all 2B rows, prompts counted in both halves)."""
    return int(batch.attention_mask.sum())


class PairSampler:
    """An endless, resumable stream of micro-batches over ``pairs``.

    Epoch e visits the pairs in a permutation drawn from (seed, e) (identity order when ``shuffle`` is
    False). A micro-batch never crosses an epoch: when fewer than size·world_size pairs are left in the
    epoch, they are skipped (so no pair appears twice in a micro-batch) and the next epoch starts.
    Sharding: each call takes the next size·world_size pairs of the stream — the single-process
    micro-batch — and rank r keeps the contiguous slice [r·size, (r+1)·size), so the ranks' slices
    concatenated in rank order are exactly that micro-batch. Every rank holds the same position, so any
    rank's ``state_dict`` resumes all of them.
    """

    def __init__(
        self,
        pairs: Sequence[TokenizedPair],
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not pairs:
            raise ValueError("PairSampler needs at least one pair")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..world_size−1 (world_size {world_size})")
        self._pairs = list(pairs)
        self._seed, self._shuffle = seed, shuffle
        self._rank, self._world_size = rank, world_size
        self.epoch, self.index = 0, 0
        self._order: tuple[int, list[int]] | None = None

    def next_micro_batch(self, size: int) -> list[TokenizedPair]:
        """This rank's ``size`` pairs of the next micro-batch; advances the shared position."""
        total = size * self._world_size
        if size < 1 or total > len(self._pairs):
            shape = f"{size}×{self._world_size}"
            raise ValueError(f"cannot draw a micro-batch of {shape} pairs from {len(self._pairs)} pairs")
        if self.index + total > len(self._pairs):
            self.epoch, self.index = self.epoch + 1, 0
        chunk = self._permutation()[self.index : self.index + total]
        self.index += total
        mine = chunk[self._rank * size : (self._rank + 1) * size]
        return [self._pairs[i] for i in mine]

    def _permutation(self) -> list[int]:
        if self._order is None or self._order[0] != self.epoch:
            order = list(range(len(self._pairs)))
            if self._shuffle:
                random.Random(f"alignscope-sampler:{self._seed}:{self.epoch}").shuffle(order)
            self._order = (self.epoch, order)
        return self._order[1]

    def state_dict(self) -> dict[str, int]:
        """The position (epoch, index) plus what it is only valid for (seed, number of pairs)."""
        return {"epoch": self.epoch, "index": self.index, "seed": self._seed, "num_pairs": len(self._pairs)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at ``state``; ValueError if it was saved for another seed or another dataset size."""
        expected = (self._seed, len(self._pairs))
        if (state["seed"], state["num_pairs"]) != expected:
            saved = (state["seed"], state["num_pairs"])
            raise ValueError(f"sampler state is for (seed, num_pairs) {saved}, this sampler is {expected}")
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
