"""A user's rule judge as ``evaluation.judge.entry_point`` names it, plus ones that must be refused
(tests/engine/test_custom_judge.py)."""

from __future__ import annotations

import math
import re

from worker.engine.evaluation.custom_judge import rule_judge

SUM = re.compile(r"What is (\d+) \+ (\d+)\?")
NOT_CALLABLE = 3


@rule_judge
def arithmetic_exact(prompt: str, response: str) -> bool:
    """True when ``prompt`` is "What is a + b?" and ``response`` is exactly a + b (spaces aside);
    False otherwise (every other prompt: both responses score 0, a tie)."""
    match = SUM.fullmatch(prompt.strip())
    return match is not None and response.strip() == str(int(match[1]) + int(match[2]))


@rule_judge
def word_overlap(prompt: str, response: str) -> float:
    """Share of the prompt's distinct words that the response repeats (0 to 1)."""
    wanted = set(prompt.split())
    return len(wanted & set(response.split())) / len(wanted) if wanted else 0.0


def unmarked(prompt: str, response: str) -> float:
    return 1.0


@rule_judge
def one_argument(text: str) -> float:
    return 0.0


@rule_judge
def not_a_number(prompt: str, response: str) -> float:
    return math.nan if "nan" in response else 0.0


@rule_judge
def raises(prompt: str, response: str) -> float:
    raise KeyError(response)
