"""Preference pairs the project builds itself, for tasks whose right answer is known.

Every row is labelled constructed: ``source = "constructed:<task>:<gap>"`` (gap ``high`` or ``low``),
``format = "standard"``, ``line`` = 1-based index of the pair. Tasks:

- arithmetic: prompt ``"What is 17 + 25?"`` (operands 0–99), chosen ``"42"``.
- copy: prompt ``"Repeat: apple river stone"`` (3–5 distinct words), chosen ``"apple river stone"``.
- sort: prompt ``"Sort: 7 2 11 4"`` (3–6 distinct numbers 0–20), chosen ``"2 4 7 11"``.
- next_line: prompt ``"Continue the text:\n"`` and ``context_lines`` lines of real text (the Python
  reference shipped with Python), chosen the true next line (worker.engine.data.text_lines).

The quality gap between chosen and rejected is controlled per pair:

- high gap (obviously wrong): arithmetic answer + 100…900; copy with entirely different words; sort in
  descending order; next_line a random line from elsewhere in the text.
- low gap (nearly right): arithmetic answer ± 1; copy with two adjacent words swapped; sort with one
  adjacent pair swapped; next_line the true line with two adjacent words swapped.

Exactly ``round(num_pairs · high_gap_fraction)`` pairs are high-gap; tasks cycle in the order given.
The same spec gives the same rows (a ``random.Random`` seeded with the spec's seed); a generated pair
equal to an earlier one is redrawn, so pair ids are unique.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from functools import partial

from contracts.config import ConstructedDataSpec
from contracts.pairs import PreferenceRow
from worker.engine.data.text_lines import PROMPT_PATTERN, next_line_answer, next_line_pair

WORD_TEXT = """
apple river stone cloud green table music light paper window orange forest silver garden yellow
bridge candle winter summer rabbit pencil mountain ocean basket copper violet planet marble needle
thunder meadow lantern harbor feather pepper
"""
WORDS = tuple(WORD_TEXT.split())
MAX_REDRAWS = 100
PROMPT_PATTERNS = {
    "arithmetic": re.compile(r"What is (\d+) \+ (\d+)\?"),
    "copy": re.compile(r"Repeat: (.+)"),
    "sort": re.compile(r"Sort: (.+)"),
    "next_line": PROMPT_PATTERN,
}

Triple = tuple[str, str, str]


def constructed_rows(spec: ConstructedDataSpec) -> list[PreferenceRow]:
    """``spec.num_pairs`` rows, deterministic for ``spec`` (see the module docstring)."""
    rng = random.Random(f"alignscope-constructed:{spec.seed}")
    high_count = round(spec.num_pairs * spec.high_gap_fraction)
    gaps = ["high"] * high_count + ["low"] * (spec.num_pairs - high_count)
    rng.shuffle(gaps)
    seen: set[Triple] = set()
    rows = []
    for index, gap in enumerate(gaps):
        task = spec.tasks[index % len(spec.tasks)]
        generate = _generator(task, spec)
        triple = generate(rng, gap == "high")
        for _ in range(MAX_REDRAWS):
            if triple not in seen:
                break
            triple = generate(rng, gap == "high")
        seen.add(triple)
        source = f"constructed:{task}:{gap}"
        rows.append(PreferenceRow(*triple, line=index + 1, source=source, format="standard"))
    return rows


def _generator(task: str, spec: ConstructedDataSpec) -> Callable[[random.Random, bool], Triple]:
    """The pair generator of ``task`` with the spec's task settings applied."""
    if task == "next_line":
        return partial(next_line_pair, context_lines=spec.context_lines)
    return GENERATORS[task]


def task_and_gap(source: str) -> tuple[str, str]:
    """("arithmetic", "high") from "constructed:arithmetic:high"; ValueError for other sources."""
    parts = source.split(":")
    if len(parts) != 3 or parts[0] != "constructed" or parts[1] not in GENERATORS:
        raise ValueError(f"not a constructed source: {source!r}")
    return parts[1], parts[2]


def expected_answer(task: str, prompt: str) -> str:
    """The one correct response to a constructed prompt. ValueError for an unknown task, a prompt
    that is not of the task's form, or a next_line context that is not in this Python's text."""
    if task not in PROMPT_PATTERNS:
        raise ValueError(f"unknown constructed task {task!r}; known: {', '.join(PROMPT_PATTERNS)}")
    match = PROMPT_PATTERNS[task].fullmatch(prompt.strip())
    if match is None:
        raise ValueError(f"prompt {prompt!r} is not a {task} prompt")
    if task == "arithmetic":
        return str(int(match[1]) + int(match[2]))
    if task == "copy":
        return " ".join(match[1].split())
    if task == "next_line":
        return next_line_answer(match[1].split("\n"))
    return " ".join(str(n) for n in sorted(int(n) for n in match[1].split()))


def is_correct(task: str, prompt: str, response: str) -> bool:
    """Ground-truth rule: the response, with whitespace runs collapsed and ends stripped, equals the
    expected answer exactly (anything extra — a second line, a trailing word — is wrong)."""
    return " ".join(response.split()) == expected_answer(task, prompt)


# --------------------------------------------------------------------------------------- generators


def _arithmetic(rng: random.Random, high: bool) -> Triple:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    answer = a + b
    if high:
        wrong = answer + rng.randint(100, 900)
    else:
        wrong = answer + 1 if answer == 0 or rng.random() < 0.5 else answer - 1
    return f"What is {a} + {b}?", str(answer), str(wrong)


def _copy(rng: random.Random, high: bool) -> Triple:
    words = rng.sample(WORDS, rng.randint(3, 5))
    if high:
        others = [word for word in WORDS if word not in words]
        wrong = rng.sample(others, len(words))
    else:
        wrong = _swap_adjacent(words, rng)
    return "Repeat: " + " ".join(words), " ".join(words), " ".join(wrong)


def _sort(rng: random.Random, high: bool) -> Triple:
    numbers = rng.sample(range(21), rng.randint(3, 6))
    ordered = sorted(numbers)
    wrong = ordered[::-1] if high else _swap_adjacent(ordered, rng)
    prompt = "Sort: " + " ".join(map(str, numbers))
    return prompt, " ".join(map(str, ordered)), " ".join(map(str, wrong))


def _swap_adjacent(items: list, rng: random.Random) -> list:
    """A copy with one adjacent pair swapped (different from ``items`` when its elements are distinct)."""
    swapped = list(items)
    i = rng.randrange(len(items) - 1)
    swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    return swapped


GENERATORS: dict[str, Callable[[random.Random, bool], Triple]] = {
    "arithmetic": _arithmetic,
    "copy": _copy,
    "sort": _sort,
    "next_line": next_line_pair,
}
