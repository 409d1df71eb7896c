"""A user's rule judge named by evaluation.judge.entry_point: the config's checks of its form, the
worker's checks when importing it, its verdicts, and its use in a training run's evaluation."""

from __future__ import annotations

import pytest

from backend.config_files import ConfigError, apply_overrides, load_preset, validate
from contracts.config import JudgeConfig, RunConfig
from tests.engine.rule_judge_example import arithmetic_exact
from worker.engine.evaluation.custom_judge import EntryPointError, EntryPointJudge, RuleJudgeError
from worker.engine.evaluation.judges import by_score
from worker.engine.evaluation.win_rates import build_judge
from worker.engine.loop import train
from worker.engine.sinks import ListSink

EXAMPLE = "tests.engine.rule_judge_example"


def judge_config(**fields: object) -> dict:
    return {"evaluation": {"judge": fields}}


def refused(**fields: object) -> str:
    with pytest.raises(ConfigError) as info:
        validate(judge_config(**fields))
    return str(info.value)


def test_the_config_checks_the_form_of_the_entry_point() -> None:
    assert JudgeConfig(kind="rule", entry_point=f"{EXAMPLE}:word_overlap").entry_point == (
        f"{EXAMPLE}:word_overlap"
    )
    assert JudgeConfig().entry_point is None  # the built-in ground truth stays the default
    message = refused(kind="rule", entry_point="/home/me/judge.py:score")
    assert message.startswith("evaluation.judge.entry_point: ") and "file paths are not accepted" in message
    assert "looks like a file path" in refused(kind="rule", entry_point="judge.py")
    message = refused(kind="rule", entry_point="my_judges.score")  # no colon
    assert message.startswith("evaluation.judge.entry_point: ")
    assert "not of the form 'package.module:function'" in message
    assert "not of the form" in refused(kind="rule", entry_point="pkg:fn:extra")
    assert "not of the form" in refused(kind="rule", entry_point="pkg.:fn")
    assert "standard-library module" in refused(kind="rule", entry_point="shutil:rmtree")
    assert "standard-library module" in refused(kind="rule", entry_point="os.path:join")
    message = refused(kind="openai", endpoint="lab", model="m", entry_point=f"{EXAMPLE}:f")
    assert "evaluation.judge.entry_point applies only to kind 'rule'" in message


@pytest.mark.parametrize(
    ("entry_point", "fragment"),
    [
        ("tests.engine.no_such_module:score", "cannot import module 'tests.engine.no_such_module'"),
        ("no_such_package_xyz.judges:score", "install the package that provides it"),
        ("tests.engine.broken_judge_module:score", "RuntimeError: this judge module is broken"),
        (f"{EXAMPLE}:missing", f"module '{EXAMPLE}' has no attribute 'missing'"),
        (f"{EXAMPLE}:NOT_CALLABLE", "is not callable (it is int)"),
        (f"{EXAMPLE}:unmarked", "is not marked as a rule judge; decorate it with"),
        (f"{EXAMPLE}:one_argument", "cannot be called as f(prompt=..., response=...)"),
    ],
)
def test_an_unusable_entry_point_names_the_field_and_the_fix(entry_point: str, fragment: str) -> None:
    config = JudgeConfig(kind="rule", entry_point=entry_point)  # the form is valid
    with pytest.raises(EntryPointError) as info:
        build_judge(config)
    assert str(info.value).startswith("evaluation.judge.entry_point: ")
    assert fragment in str(info.value)


def test_verdicts_follow_the_users_scores() -> None:
    judge = build_judge(JudgeConfig(kind="rule", entry_point=f"{EXAMPLE}:word_overlap"))
    assert isinstance(judge, EntryPointJudge) and judge.name == f"rule:{EXAMPLE}:word_overlap"
    verdicts = judge.compare(
        ["red green blue", "red green blue", "one two", "x"],
        ["red green", "red", "one two", "y"],
        ["red", "red green blue", "two one", "z"],
    )
    # scores: 2/3 vs 1/3 → a; 1/3 vs 3/3 → b; 1 vs 1 (word order ignored) → tie; 0 vs 0 → tie
    assert [v.winner for v in verdicts] == ["a", "b", "tie", "tie"]
    assert verdicts[0].output == f"rule:{EXAMPLE}:word_overlap: a=0.6667 b=0.3333"
    exact = build_judge(JudgeConfig(kind="rule", entry_point=f"{EXAMPLE}:arithmetic_exact"))
    verdicts = exact.compare(["What is 17 + 25?", "What is 17 + 25?"], ["42", "43"], ["41", " 42 "])
    assert [v.winner for v in verdicts] == ["a", "b"]  # 17 + 25 = 42: True (1) beats False (0)
    assert verdicts[0].output.endswith("a=1 b=0")


def test_a_function_that_fails_while_judging_names_the_prompt() -> None:
    nan = build_judge(JudgeConfig(kind="rule", entry_point=f"{EXAMPLE}:not_a_number"))
    with pytest.raises(RuleJudgeError, match=r"returned nan on prompt 1; it must be a function score"):
        nan.compare(["p", "q"], ["fine", "nan"], ["fine", "fine"])
    raising = build_judge(JudgeConfig(kind="rule", entry_point=f"{EXAMPLE}:raises"))
    with pytest.raises(RuleJudgeError, match="raised on prompt 0: KeyError"):
        raising.compare(["p"], ["a"], ["b"])


def small(*overrides: str) -> RunConfig:
    shrink = [
        "model.tiny.hidden_size=32",
        "model.tiny.intermediate_size=64",
        "data.constructed.num_pairs=96",
        "data.constructed.tasks=[arithmetic]",
        "data.max_length=48",
        "data.max_prompt_length=24",
        "data.eval_fraction=0.1",
        "optim.max_steps=2",
        "checkpoint_every=0",
        "evaluation.at_end=true",
        "evaluation.num_prompts=6",
        "evaluation.max_new_tokens=4",
        "evaluation.temperatures=[1.0]",
    ]
    return validate(apply_overrides(load_preset("tiny-dpo"), [*shrink, *overrides]))


def test_a_run_with_an_unimportable_judge_fails_before_its_first_step() -> None:
    sink = ListSink()
    with pytest.raises(EntryPointError, match="cannot import module 'my_missing_judges'"):
        train(small("evaluation.judge.entry_point=my_missing_judges:score"), sink)
    assert sink.point_list == []  # no step was taken


def test_a_training_run_is_evaluated_by_the_users_judge() -> None:
    sink = ListSink()
    summary = train(small(f"evaluation.judge.entry_point={EXAMPLE}:arithmetic_exact"), sink)
    assert summary.status == "succeeded", summary.error
    name = f"rule:{EXAMPLE}:arithmetic_exact"
    assert [(r.step, r.judge, r.wins + r.ties + r.losses) for r in sink.eval_records] == [(2, name, 6)]
    for j in sink.judgments:  # every stored verdict is the function's, recomputed here
        mine, theirs = arithmetic_exact(j.prompt, j.response), arithmetic_exact(j.prompt, j.opponent_response)
        assert theirs  # the opponent is the dataset's chosen answer, always right
        assert j.verdict == {"a": "win", "b": "loss", "tie": "tie"}[by_score(mine, theirs)]
