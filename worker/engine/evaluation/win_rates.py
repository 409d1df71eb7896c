"""Win rates: sample from the policy on held-out prompts at each temperature and judge each response
against an opponent — the dataset's chosen response, or the reference model's sample.

Counting: a tie is half a win, win_rate = (wins + ties/2) / n, and the 95 % interval is Wilson's score
interval on that fractional count. The reference's samples are drawn once, before the first update
(when the policy still equals πref, so no reference model is needed in memory), and kept in the
checkpoint state. Each temperature has its own sampling seed (``seed + 1000·index``), the same at
every evaluation step, so successive steps differ by the policy only. Prompts: the first
``num_prompts`` held-out pairs (training pairs when the run has none; the status says so). A judge
that counts its usage (the OpenAI-compatible one) adds its running totals — requests, tokens, cost in
US dollars — to every evaluation's metric values; they are kept in the checkpoint state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn
from transformers import PreTrainedTokenizerBase

from contracts import metric_keys as mk
from contracts.config import EvaluationConfig, JudgeConfig
from contracts.events import EvalRecord, Judgment
from worker.engine.data.pairs import TokenizedPair
from worker.engine.evaluation.custom_judge import EntryPointJudge
from worker.engine.evaluation.generation import sample
from worker.engine.evaluation.judges import Judge, RewardModelJudge, RuleJudge, Verdict
from worker.engine.evaluation.openai_judge import OpenAIJudge, Usage

Z95 = 1.959963984540054
VERDICT_FOR_POLICY = {"a": "win", "b": "loss", "tie": "tie"}


def build_judge(config: JudgeConfig) -> Judge:
    """The judge of ``config`` (the OpenAI one calls the operator's endpoint ``config.endpoint``). A
    rule judge with an ``entry_point`` imports it here: EntryPointError (a ValueError naming
    ``evaluation.judge.entry_point``) when it cannot be used."""
    if config.kind == "rule":
        return EntryPointJudge(config.entry_point) if config.entry_point else RuleJudge()
    if config.kind == "reward_model":
        return RewardModelJudge(str(config.path))
    return OpenAIJudge.from_config(config)


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion successes/n (successes may be fractional: ties count
    half). (nan, nan) when n = 0."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(
    first: tuple[float, float, float], second: tuple[float, float, float]
) -> tuple[float, float, float]:
    """Newcombe's hybrid score interval for p1 − p2 from two (p, low, high) Wilson triples:
    (d, d − √((p1−l1)² + (u2−p2)²), d + √((u1−p1)² + (p2−l2)²)). Treats the samples as independent
    (conservative when both were judged on the same prompts)."""
    (p1, l1, u1), (p2, l2, u2) = first, second
    d = p1 - p2
    return d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def tally(step: int, temperature: float, judge: str, opponent: str, verdicts: Sequence[str]) -> EvalRecord:
    """An EvalRecord from policy-side verdicts ("win"/"tie"/"loss")."""
    wins, ties = verdicts.count("win"), verdicts.count("tie")
    n = len(verdicts)
    rate = (wins + ties / 2) / n if n else math.nan
    low, high = wilson_interval(wins + ties / 2, n)
    return EvalRecord(step, temperature, judge, opponent, wins, ties, n - wins - ties, rate, low, high)


@dataclass
class EvaluationResult:
    """One evaluation: its records, the per-prompt judgments, and metric values by key."""

    records: list[EvalRecord]
    judgments: list[Judgment]
    values: dict[str, float]


class Evaluator:
    """Win rates of ``model`` (the policy, trained in place) on ``items``' prompts (module docstring)."""

    def __init__(
        self,
        config: EvaluationConfig,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        items: Sequence[TokenizedPair],
        judge: Judge,
    ) -> None:
        self.config = config
        self.model, self.tokenizer = model, tokenizer
        self.items = list(items[: config.num_prompts])
        self.judge = judge
        self.reference_samples: dict[str, list[str]] = {}

    def due(self, step: int, final: bool) -> bool:
        """True at every ``every``-th step and at the last step when ``at_end``."""
        every = self.config.every
        return bool(every and step % every == 0) or (final and self.config.at_end)

    def _samples(self, temperature_index: int) -> list[str]:
        temperature = self.config.temperatures[temperature_index]
        prompts = [item.prompt_ids for item in self.items]
        seed = self.config.seed + 1000 * temperature_index
        drawn = sample(self.model, self.tokenizer, prompts, temperature, self.config.max_new_tokens, seed)
        return [s.text for s in drawn]

    def prepare(self) -> None:
        """Draws the reference's samples (call before the first update, while policy = πref)."""
        if "reference" in self.config.opponents:
            self.reference_samples = {str(i): self._samples(i) for i in range(len(self.config.temperatures))}

    def evaluate(self, step: int) -> EvaluationResult:
        """Samples, judges and counts at every temperature and against every opponent."""
        prompts = [item.prompt_text for item in self.items]
        result = EvaluationResult([], [], {})
        for index, temperature in enumerate(self.config.temperatures):
            responses = self._samples(index)
            for opponent in self.config.opponents:
                others = (
                    [item.chosen_text for item in self.items]
                    if opponent == "chosen"
                    else self.reference_samples[str(index)]
                )
                verdicts = self.judge.compare(prompts, responses, others)
                self._record(result, step, temperature, opponent, prompts, responses, others, verdicts)
        usage = self._usage()
        if usage is not None:
            result.values.update(usage_values(usage))
        return result

    def _usage(self) -> Usage | None:
        usage = getattr(self.judge, "usage", None)
        return usage if isinstance(usage, Usage) else None

    def _record(
        self,
        result: EvaluationResult,
        step: int,
        temperature: float,
        opponent: str,
        prompts: list[str],
        responses: list[str],
        others: list[str],
        verdicts: list[Verdict],
    ) -> None:
        sides = [VERDICT_FOR_POLICY[v.winner] for v in verdicts]
        record = tally(step, temperature, self.judge.name, opponent, sides)
        result.records.append(record)
        result.values[mk.eval_win_rate(opponent, temperature)] = record.win_rate
        result.judgments.extend(
            Judgment(step, temperature, self.judge.name, opponent, i, p, r, o, side, v.output)  # type: ignore[arg-type]
            for i, (p, r, o, side, v) in enumerate(
                zip(prompts, responses, others, sides, verdicts, strict=True)
            )
        )

    def state_dict(self) -> dict[str, dict]:
        usage = self._usage()
        return {"reference_samples": self.reference_samples, "judge_usage": usage.counts() if usage else {}}

    def load_state_dict(self, state: dict) -> None:
        self.reference_samples = dict(state.get("reference_samples", {}))
        usage = self._usage()
        if usage is not None:
            for name, value in state.get("judge_usage", {}).items():
                setattr(usage, name, int(value))


def usage_values(usage: Usage) -> dict[str, float]:
    """The judge's running totals by metric key (requests, prompt and completion tokens, cost in USD)."""
    return {
        mk.EVAL_JUDGE_REQUESTS: float(usage.requests),
        mk.EVAL_JUDGE_PROMPT_TOKENS: float(usage.prompt_tokens),
        mk.EVAL_JUDGE_COMPLETION_TOKENS: float(usage.completion_tokens),
        mk.EVAL_JUDGE_COST_USD: usage.cost,
    }
