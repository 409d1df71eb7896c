"""A user's own rule judge, named by ``evaluation.judge.entry_point: "package.module:function"``.

The contract of the function::

    @rule_judge
    def score(prompt: str, response: str) -> float: ...

It is called with keyword arguments ``prompt`` and ``response`` (the dataset prompt and one response,
as plain text) and returns a finite real number, higher is better (``True``/``False`` count as 1/0).
Two responses are compared by their scores: the higher wins, equal scores tie, as the built-in rule
judge does. It must be marked as a rule judge — by the ``rule_judge`` decorator below, or by setting
the attribute ``alignscope_rule_judge = True`` on it — so that no other importable function (say
``shutil:rmtree``) can be named by mistake or on purpose.

The module is imported by name in the worker's environment (an installed package, or a folder on the
worker's PYTHONPATH); file paths are refused when the config is validated (contracts.config). Any
problem — the module cannot be imported, it lacks the name, the object is not callable, not marked, or
does not accept ``prompt`` and ``response`` — raises EntryPointError, whose message starts with
``evaluation.judge.entry_point:`` and says what to fix. A function that raises or returns something
other than a finite number while judging raises RuleJudgeError naming the prompt.
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import TypeVar

from contracts.user_errors import UserError
from worker.engine.evaluation.judges import Verdict, by_score

MARK = "alignscope_rule_judge"
FIELD = "evaluation.judge.entry_point"
CONTRACT = "a function score(prompt: str, response: str) -> float (higher is better)"

F = TypeVar("F", bound=Callable[..., object])


class EntryPointError(UserError):
    """The entry point cannot be used as a rule judge; the message names the field and the fix."""


class RuleJudgeError(RuntimeError):
    """The user's function failed or returned no finite number while judging."""


def rule_judge(function: F) -> F:
    """Marks ``function`` as a rule judge that ``evaluation.judge.entry_point`` may name."""
    setattr(function, MARK, True)
    return function


def load_rule_function(entry_point: str) -> Callable[..., object]:
    """The marked function named by ``entry_point`` ("package.module:function"), or EntryPointError."""
    module_name, _, attribute = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EntryPointError(
            f"{FIELD}: cannot import module '{module_name}' ({type(exc).__name__}: {exc}); install the "
            "package that provides it in the worker's environment, or add its folder to the worker's "
            "PYTHONPATH"
        ) from exc
    except Exception as exc:  # the user's module itself failed while importing
        raise EntryPointError(
            f"{FIELD}: importing module '{module_name}' failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(module, attribute):
        raise EntryPointError(
            f"{FIELD}: module '{module_name}' has no attribute '{attribute}'; check the name after the colon"
        )
    function = getattr(module, attribute)
    if not callable(function):
        kind = type(function).__name__
        raise EntryPointError(f"{FIELD}: '{entry_point}' is not callable (it is {kind}); name {CONTRACT}")
    if getattr(function, MARK, False) is not True:
        raise EntryPointError(
            f"{FIELD}: '{entry_point}' is not marked as a rule judge; decorate it with "
            "@worker.engine.evaluation.custom_judge.rule_judge "
            "(or set its attribute alignscope_rule_judge = True)"
        )
    _check_signature(function, entry_point)
    return function


def _check_signature(function: Callable[..., object], entry_point: str) -> None:
    try:
        inspect.signature(function).bind(prompt="", response="")
    except TypeError as exc:
        raise EntryPointError(
            f"{FIELD}: '{entry_point}' cannot be called as f(prompt=..., response=...) ({exc}); "
            f"it must be {CONTRACT}"
        ) from exc
    except ValueError:  # no signature to inspect (some builtins): checked when first called
        return


class EntryPointJudge:
    """Pairwise judge from a user's scoring function (module docstring). name: "rule:<entry point>"."""

    def __init__(self, entry_point: str) -> None:
        self.entry_point = entry_point
        self.function = load_rule_function(entry_point)
        self.name = f"rule:{entry_point}"

    def score(self, prompt: str, response: str, item: int) -> float:
        """The function's score of ``response``; RuleJudgeError when it raises or returns no finite
        real number (``item``: the prompt's index, for the message)."""
        try:
            value = self.function(prompt=prompt, response=response)
        except Exception as exc:
            raise RuleJudgeError(
                f"rule judge '{self.entry_point}' raised on prompt {item}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise RuleJudgeError(
                f"rule judge '{self.entry_point}' returned {value!r} on prompt {item}; "
                f"it must be {CONTRACT} returning a finite number"
            )
        return float(value)

    def compare(
        self, prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str]
    ) -> list[Verdict]:
        verdicts = []
        for item, (prompt, a, b) in enumerate(zip(prompts, responses_a, responses_b, strict=True)):
            score_a, score_b = self.score(prompt, a, item), self.score(prompt, b, item)
            output = f"{self.name}: a={score_a:.4g} b={score_b:.4g}"
            verdicts.append(Verdict(by_score(score_a, score_b), output))
        return verdicts
