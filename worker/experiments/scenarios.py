"""On- and off-policy preference data: the four scenarios of the 3D-properties paper (App. C, Table 4;
SCIENCE.md §C.3).

| scenario | chosen from                        | rejected from                         |
|----------|------------------------------------|---------------------------------------|
| s1       | policy: best of K own samples      | policy: worst of K own samples        |
| s2       | dataset: the pair's chosen         | policy: worst of K own samples        |
| s3       | policy: best of K own samples      | another model's sample                |
| s4       | dataset: the pair's chosen         | another model's sample                |

The K policy samples of a prompt are ranked by a pairwise judge in a round robin (Copeland score:
wins + ties/2). "Another model" is any causal LM with its tokenizer; without one, the pair's dataset
rejected response stands in for it (off-policy either way). A row is kept only when the judge prefers
its chosen over its rejected response, so every scenario's rows carry a real preference; the count
of dropped prompts is returned. Rows are ``PreferenceRow``s labelled ``scenario:<name>:<chosen
source>/<rejected source>`` and can be written as TRL-standard JSONL for ``data.source: file``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from torch import nn
from transformers import PreTrainedTokenizerBase

from contracts.pairs import PreferenceRow
from worker.engine.data.pairs import TokenizedPair
from worker.engine.evaluation.generation import sample
from worker.engine.evaluation.judges import Judge

SCENARIOS: dict[str, tuple[str, str]] = {
    "s1": ("policy", "policy"),
    "s2": ("dataset", "policy"),
    "s3": ("policy", "model"),
    "s4": ("dataset", "model"),
}


@dataclass(frozen=True)
class SamplingSpec:
    """K samples per prompt at ``temperature``, at most ``max_new_tokens`` tokens, seeded."""

    samples_per_prompt: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 32
    seed: int = 0


@dataclass
class ScenarioData:
    """Rows per scenario and the number of prompts dropped (no preference) per scenario."""

    rows: dict[str, list[PreferenceRow]]
    dropped: dict[str, int]


def copeland_order(judge: Judge, prompts: Sequence[str], samples: Sequence[Sequence[str]]) -> list[list[int]]:
    """For each prompt, its samples' indices from best to worst by round-robin score (wins + ties/2;
    equal scores keep sample order), with one batched ``compare`` call for all pairs."""
    matches = [(p, i, j) for p, group in enumerate(samples) for i, j in combinations(range(len(group)), 2)]
    verdicts = judge.compare(
        [prompts[p] for p, _, _ in matches],
        [samples[p][i] for p, i, _ in matches],
        [samples[p][j] for p, _, j in matches],
    )
    scores = [[0.0] * len(group) for group in samples]
    for (p, i, j), verdict in zip(matches, verdicts, strict=True):
        share = {"a": (1.0, 0.0), "b": (0.0, 1.0), "tie": (0.5, 0.5)}[verdict.winner]
        scores[p][i] += share[0]
        scores[p][j] += share[1]
    return [sorted(range(len(s)), key=lambda k, s=s: (-s[k], k)) for s in scores]


def _draws(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: list[list[int]],
    spec: SamplingSpec,
    k: int,
) -> list[list[str]]:
    """k samples per prompt, grouped by prompt."""
    repeated = [ids for ids in prompt_ids for _ in range(k)]
    texts = [
        s.text for s in sample(model, tokenizer, repeated, spec.temperature, spec.max_new_tokens, spec.seed)
    ]
    return [texts[i * k : (i + 1) * k] for i in range(len(prompt_ids))]


def build_scenarios(
    items: Sequence[TokenizedPair],
    policy: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    judge: Judge,
    spec: SamplingSpec = SamplingSpec(),
    other: tuple[nn.Module, PreTrainedTokenizerBase] | None = None,
    names: Sequence[str] = tuple(SCENARIOS),
) -> ScenarioData:
    """The rows of each scenario in ``names`` over the prompts of ``items`` (module docstring)."""
    prompts = [item.prompt_text for item in items]
    own = _draws(policy, tokenizer, [list(item.prompt_ids) for item in items], spec, spec.samples_per_prompt)
    order = copeland_order(judge, prompts, own)
    best = [group[o[0]] for group, o in zip(own, order, strict=True)]
    worst = [group[o[-1]] for group, o in zip(own, order, strict=True)]
    if other is not None:
        model, other_tokenizer = other
        ids = [list(other_tokenizer(p)["input_ids"]) for p in prompts]
        foreign = [group[0] for group in _draws(model, other_tokenizer, ids, spec, 1)]
    else:
        foreign = [item.rejected_text for item in items]
    sources = {
        ("chosen", "policy"): best,
        ("chosen", "dataset"): [item.chosen_text for item in items],
        ("rejected", "policy"): worst,
        ("rejected", "model"): foreign,
    }
    data = ScenarioData({}, {})
    for name in names:
        chosen_from, rejected_from = SCENARIOS[name]
        chosen, rejected = sources[("chosen", chosen_from)], sources[("rejected", rejected_from)]
        verdicts = judge.compare(prompts, chosen, rejected)
        rejected_label = rejected_from if rejected_from == "policy" or other else "dataset-rejected"
        label = f"scenario:{name}:{chosen_from}/{rejected_label}"
        rows = [
            PreferenceRow(p, c, r, line=i + 1, source=label, format="standard")
            for i, (p, c, r, v) in enumerate(zip(prompts, chosen, rejected, verdicts, strict=True))
            if v.winner == "a" and c.strip() != r.strip()
        ]
        data.rows[name] = rows
        data.dropped[name] = len(items) - len(rows)
    return data


def write_jsonl(rows: Sequence[PreferenceRow], path: Path) -> Path:
    """TRL-standard JSONL (prompt, chosen, rejected per line) of plain-text rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(
                json.dumps({"prompt": row.prompt, "chosen": row.chosen, "rejected": row.rejected}) + "\n"
            )
    return path
