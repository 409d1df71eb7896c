"""Win rates: the rule judge, Wilson and Newcombe intervals, and the evaluator inside the loop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from backend.config_files import apply_overrides, load_preset, validate
from contracts import metric_keys as mk
from contracts.config import RunConfig
from worker.engine.evaluation.judges import RuleJudge, by_score, rule_score, task_of
from worker.engine.evaluation.win_rates import difference_interval, tally, wilson_interval
from worker.engine.loop import train
from worker.engine.sinks import ListSink


def test_rule_score_and_verdicts() -> None:
    assert task_of("Sort: 3 1 2") == "sort" and task_of("Tell me a joke") is None
    assert rule_score("sort", "Sort: 3 1 2", " 1  2 3 ") == 1.0  # whitespace-normalised exact answer
    assert rule_score("arithmetic", "What is 2 + 2?", "5") == 0.0  # no common character with "4"
    assert rule_score("arithmetic", "What is 2 + 2?", "44") == pytest.approx(0.99 * 2 / 3)  # ratio 2·1/(2+1)
    verdicts = RuleJudge().compare(
        ["What is 2 + 2?", "What is 2 + 2?", "What is 2 + 2?", "Sort: 3 1 2", "Tell me a joke"],
        ["4", "44", "5", "1 2 3", "ha"],
        ["5", "5", "4", "1 2 3", "ho"],
    )
    assert [v.winner for v in verdicts] == ["a", "a", "b", "tie", "tie"]
    assert verdicts[0].output == "arithmetic: a=1.000 b=0.000" and verdicts[4].output == "unknown task"
    assert by_score(1.0, 0.5, margin=0.6) == "tie" and by_score(0.2, 1.0) == "b"


def test_wilson_interval_by_hand() -> None:
    # 8/10, z = 1.96: centre (0.8 + 3.8416/20)/1.38416 = 0.71674;
    # half 1.96·√(0.016 + 0.009604)/1.38416 = 0.22658
    assert wilson_interval(8, 10) == pytest.approx((0.49016, 0.94332), abs=2e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27754), abs=2e-4)  # never below 0
    assert wilson_interval(10, 10) == pytest.approx((0.72246, 1.0), abs=2e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_ties_count_half_and_differences_get_newcombe_intervals() -> None:
    record = tally(5, 0.5, "rule", "chosen", ["win", "tie", "loss", "win"])
    assert (record.wins, record.ties, record.losses) == (2, 1, 1)
    assert record.win_rate == pytest.approx(2.5 / 4)  # (2 + ½)/4
    assert (record.ci_low, record.ci_high) == pytest.approx(wilson_interval(2.5, 4))
    first, second = (0.7, 0.6, 0.8), (0.5, 0.45, 0.6)
    d, low, high = difference_interval(first, second)
    assert d == pytest.approx(0.2)
    assert low == pytest.approx(0.2 - math.hypot(0.1, 0.1))  # d − √((p1−l1)² + (u2−p2)²)
    assert high == pytest.approx(0.2 + math.hypot(0.1, 0.05))  # d + √((u1−p1)² + (p2−l2)²)


def small(*overrides: str) -> RunConfig:
    shrink = [
        "model.tiny.hidden_size=32",
        "model.tiny.intermediate_size=64",
        "data.constructed.num_pairs=96",
        "data.max_length=48",
        "data.max_prompt_length=24",
        "data.eval_fraction=0.1",
        "optim.max_steps=4",
        "optim.warmup_steps=0",
        "checkpoint_every=0",
        "evaluation.num_prompts=6",
        "evaluation.max_new_tokens=6",
        "evaluation.temperatures=[0.0, 1.0]",
    ]
    return validate(apply_overrides(load_preset("tiny-dpo"), [*shrink, *overrides]))


def test_evaluator_in_the_loop_records_every_step_temperature_and_opponent() -> None:
    sink = ListSink()
    plain = ListSink()
    train(small("evaluation.every=2", "evaluation.opponents=[chosen, reference]"), sink)
    train(small(), plain)
    assert sink.series(mk.TRAIN_LOSS) == plain.series(mk.TRAIN_LOSS)  # evaluation does not perturb training
    keys = [(r.step, r.temperature, r.opponent) for r in sink.eval_records]
    assert keys == [(s, t, o) for s in (2, 4) for t in (0.0, 1.0) for o in ("chosen", "reference")]
    assert all(r.judge == "rule" and r.wins + r.ties + r.losses == 6 for r in sink.eval_records)
    assert len(sink.judgments) == 8 * 6
    assert {k for k in sink.keys_at(2) if k.startswith("eval/win_rate")} == {
        "eval/win_rate/chosen/T=0",
        "eval/win_rate/chosen/T=1",
        "eval/win_rate/reference/T=0",
        "eval/win_rate/reference/T=1",
    }
    by_step = {
        step: [j.opponent_response for j in sink.judgments if j.step == step and j.opponent == "reference"]
        for step in (2, 4)
    }
    assert by_step[2] == by_step[4]  # the reference's samples are drawn once and kept
    chosen = [j for j in sink.judgments if j.opponent == "chosen" and j.verdict == "tie"]
    assert all(
        j.judge_output.endswith("a=1.000 b=1.000") for j in chosen
    )  # a tie vs chosen means exactly right


def test_reference_samples_survive_a_stop_and_resume(tmp_path: Path) -> None:
    config = small("evaluation.at_end=true", "evaluation.opponents=[reference]", "optim.max_steps=3")
    whole = ListSink()
    train(config, whole)
    first, resumed = ListSink(), ListSink()
    stopped = train(config, first, should_stop=lambda: True, checkpoint_dir=tmp_path / "ck")
    assert stopped.status == "stopped" and stopped.steps == 1 and not first.eval_records
    train(config, resumed, checkpoint_dir=tmp_path / "ck")
    assert [j.opponent_response for j in resumed.judgments] == [j.opponent_response for j in whole.judgments]
    assert [(r.wins, r.ties, r.losses) for r in resumed.eval_records] == [
        (r.wins, r.ties, r.losses) for r in whole.eval_records
    ]
