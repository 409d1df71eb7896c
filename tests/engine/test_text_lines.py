"""The next_line constructed task: real text (the Python reference shipped with Python), pairs with a
known right answer and a designed quality gap, and the rule judge's verdicts on it."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from backend.config_files import apply_overrides, load_preset, validate
from contracts.config import ConstructedDataSpec
from worker.engine.data.constructed import constructed_rows, expected_answer, is_correct, task_and_gap
from worker.engine.data.text_lines import PROMPT_HEAD, next_line_answer, paragraphs
from worker.engine.evaluation.judges import RuleJudge, rule_score, task_of
from worker.engine.loop import train
from worker.engine.sinks import ListSink

ASSERT_PROMPT = PROMPT_HEAD + "Assert statements are a convenient way to insert debugging assertions"
WHILE_PROMPT = (
    PROMPT_HEAD + "This repeatedly tests the expression and, if it is true, executes the\n"
    "first suite; if the expression is false (which may be the first time"
)
WHILE_NEXT = 'it is tested) the suite of the "else" clause, if present, is executed'


def spec(**fields: object) -> ConstructedDataSpec:
    return ConstructedDataSpec(tasks=("next_line",), **{"num_pairs": 300, "seed": 5, **fields})


def test_the_task_is_a_config_option_with_bounded_context() -> None:
    assert spec().context_lines == 2
    assert ConstructedDataSpec().tasks == ("arithmetic", "copy", "sort")  # default (and tokenizer) unchanged
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        spec(context_lines=0)
    with pytest.raises(ValidationError, match="less than or equal to 8"):
        spec(context_lines=9)


def test_pairs_are_well_formed_labelled_and_deterministic() -> None:
    rows = constructed_rows(spec())
    assert rows == constructed_rows(spec())  # same spec, same rows
    assert rows != constructed_rows(spec(seed=6))
    assert [row.line for row in rows] == list(range(1, 301))
    assert len({row.pair_id for row in rows}) == 300
    assert Counter(task_and_gap(row.source) for row in rows) == {
        ("next_line", "high"): 150,
        ("next_line", "low"): 150,
    }
    text_lines = {line for _, lines in paragraphs() for line in lines}
    for row in rows:
        assert row.format == "standard" and row.prompt.startswith(PROMPT_HEAD)
        context = row.prompt[len(PROMPT_HEAD) :].split("\n")
        assert len(context) == 2 and set(context) <= text_lines  # two real lines of the text
        assert row.chosen == next_line_answer(context) and row.chosen in text_lines
        assert is_correct("next_line", row.prompt, row.chosen) and not is_correct(
            "next_line", row.prompt, row.rejected
        )
    three = constructed_rows(spec(context_lines=3, num_pairs=20))
    assert all(row.prompt.count("\n") == 3 for row in three)  # the head's newline + 2 between 3 lines


def test_gaps_are_ordered_as_designed() -> None:
    text_lines = {line for _, lines in paragraphs() for line in lines}
    scores: dict[str, list[float]] = {"high": [], "low": []}
    for row in constructed_rows(spec()):
        _, gap = task_and_gap(row.source)
        chosen, rejected = row.chosen.split(), row.rejected.split()
        if gap == "low":  # the true line with one adjacent pair of words swapped
            moved = [i for i, (c, r) in enumerate(zip(chosen, rejected, strict=True)) if c != r]
            assert len(moved) == 2 and moved[1] == moved[0] + 1
            assert (rejected[moved[0]], rejected[moved[1]]) == (chosen[moved[1]], chosen[moved[0]])
        else:  # another real line of the reference (drawn from another topic)
            assert row.rejected in text_lines and row.rejected != row.chosen
        assert rule_score("next_line", row.prompt, row.chosen) == 1.0
        scores[gap].append(rule_score("next_line", row.prompt, row.rejected))
    # right 1.0 > every nearly-right (low gap) > every obviously-wrong (high gap)
    assert 1.0 > min(scores["low"]) > max(scores["high"])


def test_the_rule_judge_on_hand_picked_cases() -> None:
    assert task_of(ASSERT_PROMPT) == "next_line" and task_of(WHILE_PROMPT) == "next_line"
    assert expected_answer("next_line", ASSERT_PROMPT) == "into a program:"
    assert expected_answer("next_line", WHILE_PROMPT) == WHILE_NEXT
    # "into a program" lacks the colon: 14 of 15 characters match, ratio 2·14/(14 + 15) = 28/29
    assert rule_score("next_line", ASSERT_PROMPT, "into a program") == pytest.approx(0.99 * 28 / 29)
    unknown = PROMPT_HEAD + "no line of the reference reads like this one"
    verdicts = RuleJudge().compare(
        [ASSERT_PROMPT, ASSERT_PROMPT, ASSERT_PROMPT, WHILE_PROMPT, WHILE_PROMPT, unknown],
        [
            "into a program:",
            "into  a program: ",
            "a into program:",
            WHILE_NEXT,
            WHILE_NEXT + " and more",
            "x",
        ],
        ["a into program:", "into a program:", "Assignments are illegal.", "is executed", WHILE_NEXT, "y"],
    )
    assert [v.winner for v in verdicts] == ["a", "tie", "a", "a", "b", "tie"]
    assert verdicts[1].output == "next_line: a=1.000 b=1.000"  # whitespace does not count
    assert (
        verdicts[5].output == "next_line: context is not a next_line context of this Python's reference text"
    )


def test_a_training_run_on_next_line_pairs_is_judged_by_the_rule() -> None:
    overrides = [
        "model.tiny.hidden_size=32",
        "model.tiny.intermediate_size=64",
        "data.constructed.tasks=[next_line]",
        "data.constructed.num_pairs=64",
        "data.max_length=96",
        "data.max_prompt_length=64",
        "data.eval_fraction=0.1",
        "optim.max_steps=2",
        "checkpoint_every=0",
        "evaluation.at_end=true",
        "evaluation.num_prompts=4",
        "evaluation.max_new_tokens=8",
        "evaluation.temperatures=[1.0]",
    ]
    sink = ListSink()
    summary = train(validate(apply_overrides(load_preset("tiny-dpo"), overrides)), sink)
    assert summary.status == "succeeded", summary.error
    assert [(r.judge, r.wins + r.ties + r.losses) for r in sink.eval_records] == [("rule", 4)]
    for j in sink.judgments:  # the opponent is the dataset's chosen line: always exactly right
        assert j.prompt.startswith(PROMPT_HEAD) and j.judge_output.startswith("next_line: ")
        assert j.judge_output.endswith("b=1.000") and j.verdict in ("tie", "loss")
