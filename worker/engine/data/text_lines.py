"""The ``next_line`` constructed task: continue a few lines of real text by its next line.

The text is the Python Language Reference as Python itself ships it (``pydoc_data.topics``, what
``help("while")`` shows): real English prose, present in every CPython install, so the task needs no
download and no extra package. Its prose lines are the lines of its paragraphs — runs of unindented
lines of at least 3 words, whitespace runs collapsed; a heading, its underline, a bullet, a blank line
or an indented block (code, grammar) ends a paragraph. About 700 paragraphs and 3000 lines of up to
70 characters in Python 3.11. The text changes between Python versions: the same spec gives the same
rows on the same Python minor version (pair ids are content hashes, so stored rows stay readable).

A pair: the prompt is ``"Continue the text:\\n"`` followed by ``k`` consecutive lines of one paragraph
(k = ``data.constructed.context_lines``), joined by newlines; chosen is the paragraph's next line.
Only contexts with a single continuation anywhere in the text are used, so the right answer follows
from the prompt alone (``next_line_answer``), and the rule judge can check it.

- low gap (nearly right): the true line with one pair of adjacent, different words swapped;
- high gap (obviously wrong): a random prose line from another topic of the reference.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from functools import cache

from contracts.pairs import DatasetError

PROMPT_HEAD = "Continue the text:\n"
PROMPT_PATTERN = re.compile(r"Continue the text:\n(.+)", re.DOTALL)
MIN_WORDS = 3
MAX_CONTEXT_LINES = 8
MAX_DRAWS = 100
NOT_PROSE_STARTS = ("* ", "+ ", "- ", "| ", ">>>", "...")
UNDERLINE_CHARS = frozenset("*=-^~#")

Paragraph = tuple[str, tuple[str, ...]]  # (topic, its prose lines)
Example = tuple[tuple[str, ...], str, str]  # (context lines, next line, topic)


def normalise(line: str) -> str:
    """``line`` with whitespace runs collapsed to one space and the ends stripped."""
    return " ".join(line.split())


@cache
def paragraphs() -> tuple[Paragraph, ...]:
    """The reference's prose paragraphs of at least two lines, in the order Python ships them."""
    try:
        from pydoc_data.topics import topics
    except ImportError as exc:  # a Python built without its documentation topics
        raise DatasetError(
            "data.constructed task next_line reads the Python reference shipped with Python "
            "(pydoc_data.topics), which this Python lacks; choose another task"
        ) from exc
    found = []
    for topic, text in topics.items():
        run: list[str] = []
        for raw in [*text.split("\n"), ""]:
            if _is_prose(raw):
                run.append(normalise(raw))
                continue
            if len(run) >= 2:
                found.append((topic, tuple(run)))
            run = []
    return tuple(found)


def _is_prose(raw: str) -> bool:
    text = raw.strip()
    return (
        bool(text)
        and not raw[0].isspace()
        and not set(text) <= UNDERLINE_CHARS
        and not text.startswith(NOT_PROSE_STARTS)
        and len(text.split()) >= MIN_WORDS
    )


@cache
def examples(context_lines: int) -> tuple[Example, ...]:
    """Every (context, next line, topic) whose context of ``context_lines`` lines has exactly one
    continuation in the whole text, and whose next line has two different words (so that a swap of
    adjacent words changes it); each context once, in text order."""
    continuations: dict[tuple[str, ...], set[str]] = defaultdict(set)
    ordered: dict[tuple[str, ...], tuple[str, str]] = {}
    for topic, lines in paragraphs():
        for end in range(context_lines, len(lines)):
            context = lines[end - context_lines : end]
            continuations[context].add(lines[end])
            ordered.setdefault(context, (lines[end], topic))
    return tuple(
        (context, answer, topic)
        for context, (answer, topic) in ordered.items()
        if len(continuations[context]) == 1 and len(set(answer.split())) > 1
    )


@cache
def _answers(context_lines: int) -> dict[tuple[str, ...], str]:
    return {context: answer for context, answer, _ in examples(context_lines)}


def next_line_answer(context: Sequence[str]) -> str:
    """The true next line after ``context`` (lines, whitespace-insensitive); ValueError when the
    context is not one of the task's (another text, or another Python version's)."""
    key = tuple(normalise(line) for line in context)
    answer = _answers(len(key)).get(key) if 1 <= len(key) <= MAX_CONTEXT_LINES else None
    if answer is None:
        raise ValueError("context is not a next_line context of this Python's reference text")
    return answer


def next_line_pair(rng: random.Random, high: bool, context_lines: int = 2) -> tuple[str, str, str]:
    """(prompt, chosen, rejected) of one pair (module docstring), drawn with ``rng``."""
    pool = examples(context_lines)
    if not pool:
        raise DatasetError(f"no next_line contexts of {context_lines} lines in this Python's reference text")
    context, answer, topic = rng.choice(pool)
    prompt = PROMPT_HEAD + "\n".join(context)
    return prompt, answer, _elsewhere(rng, topic, answer) if high else _swapped(rng, answer)


def _swapped(rng: random.Random, line: str) -> str:
    """``line`` with one adjacent pair of different words swapped (``line`` has at least one)."""
    words = line.split()
    places = [i for i in range(len(words) - 1) if words[i] != words[i + 1]]
    i = rng.choice(places)
    words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def _elsewhere(rng: random.Random, topic: str, answer: str) -> str:
    """A random prose line of a topic other than ``topic``, different from ``answer``."""
    lines = _lines_outside(topic)
    for _ in range(MAX_DRAWS):
        line = rng.choice(lines)
        if line != answer:
            return line
    raise DatasetError("next_line: no line of another topic differs from the true line")


@cache
def _lines_outside(topic: str) -> tuple[str, ...]:
    """Every prose line of the topics other than ``topic``, in text order."""
    return tuple(line for other, lines in paragraphs() if other != topic for line in lines)
