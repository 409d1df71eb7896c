"""Judges: which of two responses to a prompt is better. One interface, three kinds.

``compare(prompts, responses_a, responses_b)`` returns one ``Verdict`` per prompt: ``a``, ``b`` or
``tie``, with the judge's raw output (kept with every stored judgment).

- ``RuleJudge``: the constructed tasks' ground truth (worker.engine.data.constructed). An exactly right
  response beats one that is not; when neither is right, the closer one wins (closeness is the
  difflib ratio of the whitespace-normalised strings against the right answer — for next_line, how
  much of the true next line the response reproduces), equal closeness is a tie. A prompt of no
  constructed task is a tie with output "unknown task", a next_line prompt whose context is not in
  this Python's text a tie that says so.
- ``EntryPointJudge`` (custom_judge.py): a user's scoring function named by ``entry_point``.
- ``RewardModelJudge``: a local sequence-classification model (reward_model.py); the higher reward
  wins, equal rewards tie.
- ``OpenAIJudge`` (openai_judge.py): an OpenAI-compatible chat-completions endpoint.

``evaluation.build_judge`` picks one from a JudgeConfig.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from worker.engine.data.constructed import PROMPT_PATTERNS, expected_answer

Winner = Literal["a", "b", "tie"]


@dataclass(frozen=True)
class Verdict:
    """winner: ``a``, ``b`` or ``tie``; output: what the judge said (scores, texts), for display."""

    winner: Winner
    output: str


class Judge(Protocol):
    """Pairwise judge. ``name`` is stored with every judgment (e.g. "rule", "reward_model:rm-hh")."""

    name: str

    def compare(
        self, prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str]
    ) -> list[Verdict]: ...


def by_score(score_a: float, score_b: float, margin: float = 0.0) -> Winner:
    """``a`` when score_a − score_b > margin, ``b`` when < −margin, else ``tie``."""
    if score_a - score_b > margin:
        return "a"
    if score_b - score_a > margin:
        return "b"
    return "tie"


# --------------------------------------------------------------------------------------------- rule


def task_of(prompt: str) -> str | None:
    """The constructed task whose prompt form ``prompt`` has, or None."""
    for task, pattern in PROMPT_PATTERNS.items():
        if pattern.fullmatch(prompt.strip()):
            return task
    return None


def rule_score(task: str, prompt: str, response: str) -> float:
    """1.0 for the exactly right response; otherwise 0.99 × difflib ratio against the right answer
    (in [0, 0.99]), both sides whitespace-normalised. 0.99 keeps any wrong answer below a right one."""
    answer = expected_answer(task, prompt)
    given = " ".join(response.split())
    if given == answer:
        return 1.0
    return 0.99 * difflib.SequenceMatcher(None, given, answer, autojunk=False).ratio()


class RuleJudge:
    """Ground-truth judge for constructed tasks (module docstring)."""

    name = "rule"

    def compare(
        self, prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str]
    ) -> list[Verdict]:
        verdicts = []
        for prompt, a, b in zip(prompts, responses_a, responses_b, strict=True):
            task = task_of(prompt)
            if task is None:
                verdicts.append(Verdict("tie", "unknown task"))
                continue
            try:
                score_a, score_b = rule_score(task, prompt, a), rule_score(task, prompt, b)
            except ValueError as exc:  # a next_line context this Python's text does not have
                verdicts.append(Verdict("tie", f"{task}: {exc}"))
                continue
            verdicts.append(Verdict(by_score(score_a, score_b), f"{task}: a={score_a:.3f} b={score_b:.3f}"))
        return verdicts


# ------------------------------------------------------------------------------------- reward model


class RewardModelJudge:
    """Higher reward wins. ``path``: a directory written by ``alignscope train-rm`` (or any local
    sequence-classification model with safetensors weights and one output)."""

    def __init__(self, path: str | Path, batch_size: int = 16, device: str | None = None) -> None:
        from worker.engine.evaluation.reward_model import (
            load_reward_model,  # torch + transformers, only when used
        )

        self.model, self.tokenizer = load_reward_model(Path(path), device)
        self.batch_size = batch_size
        self.name = f"reward_model:{Path(path).name}"

    def scores(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """Reward of each (prompt, response), in the model's units."""
        from worker.engine.evaluation.reward_model import score_texts

        return score_texts(self.model, self.tokenizer, prompts, responses, self.batch_size)

    def compare(
        self, prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str]
    ) -> list[Verdict]:
        scores_a = self.scores(prompts, responses_a)
        scores_b = self.scores(prompts, responses_b)
        return [
            Verdict(by_score(a, b), f"reward a={a:.4f} b={b:.4f}")
            for a, b in zip(scores_a, scores_b, strict=True)
        ]
