"""The OpenAI-compatible judge's cost counter: prices from JudgeConfig, each judgment's usage line,
and the running totals as eval/judge/* metrics of a training run (kept across a stop and resume).

The local server of test_openai_judge.py answers every request with usage 100 prompt tokens and 7
completion tokens; each judged prompt costs two requests (both orders).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.config_files import apply_overrides, load_preset, validate
from contracts import metric_keys as mk
from contracts.config import JudgeConfig
from tests.integration.test_openai_judge import Script
from tests.integration.test_openai_judge import server as server  # the local endpoint fixture
from worker.engine.evaluation.openai_judge import OpenAIJudge
from worker.engine.loop import train
from worker.engine.sinks import ListSink

PRICES = [
    "evaluation.judge.usd_per_million_input_tokens=2.5",
    "evaluation.judge.usd_per_million_output_tokens=10",
]


@pytest.fixture
def endpoint(server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch) -> str:
    """The fake server configured as the operator's judge endpoint 'fake' (issue 16.1)."""
    endpoints = {"fake": {"base_url": server[0], "models": ["*"]}}
    monkeypatch.setenv("ALIGNSCOPE_JUDGE_ENDPOINTS", json.dumps(endpoints))
    return "fake"


def test_cost_from_the_configs_prices(endpoint: str) -> None:
    config = JudgeConfig(
        kind="openai",
        endpoint=endpoint,
        model="judge-model",
        requests_per_minute=100_000,
        usd_per_million_input_tokens=2.5,
        usd_per_million_output_tokens=10.0,
    )
    judge = OpenAIJudge.from_config(config)
    verdicts = judge.compare(["q1", "q2", "q3"], ["good", "x", "y"], ["bad", "good", "z"])
    # 3 prompts × 2 requests = 6 requests: 600 prompt tokens, 42 completion tokens;
    # 600 × $2.5/M + 42 × $10/M = $1500/M + $420/M = $0.00192
    assert (judge.usage.requests, judge.usage.prompt_tokens, judge.usage.completion_tokens) == (6, 600, 42)
    assert judge.usage.cost == 0.00192
    # one prompt: 2 × 100 = 200 prompt, 2 × 7 = 14 completion tokens; (200·2.5 + 14·10)/1e6 = 0.000640
    assert all(
        v.output.endswith("[usage] prompt_tokens=200 completion_tokens=14 cost_usd=0.000640")
        for v in verdicts
    )


def test_unpriced_judge_counts_tokens_at_zero_cost(endpoint: str) -> None:
    judge = OpenAIJudge.from_config(
        JudgeConfig(kind="openai", endpoint=endpoint, model="m", requests_per_minute=100_000)
    )
    judge.compare(["q"], ["good"], ["bad"])
    assert (judge.usage.prompt_tokens, judge.usage.completion_tokens, judge.usage.cost) == (200, 14, 0.0)


def test_prices_are_bounded_and_belong_to_openai() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        JudgeConfig(kind="openai", endpoint="x", model="m", usd_per_million_input_tokens=-1)
    with pytest.raises(ValueError, match="less than or equal to 10000"):
        JudgeConfig(kind="openai", endpoint="x", model="m", usd_per_million_output_tokens=1e5)
    with pytest.raises(ValueError, match="apply only to kind 'openai'"):
        JudgeConfig(kind="rule", usd_per_million_input_tokens=1.0)


def test_running_cost_is_a_metric_and_survives_a_resume(endpoint: str, tmp_path: Path) -> None:
    overrides = [
        "model.tiny.hidden_size=32",
        "model.tiny.intermediate_size=64",
        "data.constructed.num_pairs=96",
        "data.max_length=48",
        "data.max_prompt_length=24",
        "data.eval_fraction=0.1",
        "optim.max_steps=4",
        "checkpoint_every=0",
        "evaluation.every=2",
        "evaluation.num_prompts=6",
        "evaluation.max_new_tokens=4",
        "evaluation.temperatures=[0.0]",
        "evaluation.judge.kind=openai",
        f"evaluation.judge.endpoint={endpoint}",
        "evaluation.judge.model=judge-model",
        "evaluation.judge.requests_per_minute=100000",
        *PRICES,
    ]
    config = validate(apply_overrides(load_preset("tiny-dpo"), overrides))
    calls = iter(range(100))
    first, resumed = ListSink(), ListSink()
    stopped = train(config, first, should_stop=lambda: next(calls) >= 2, checkpoint_dir=tmp_path / "ck")
    assert stopped.status == "stopped" and stopped.steps == 3
    train(config, resumed, checkpoint_dir=tmp_path / "ck")
    # each evaluation: 6 prompts × 2 requests = 12 requests, 1200 prompt and 84 completion tokens,
    # 1200 × 2.5 + 84 × 10 = 3840 µ$; running totals: step 2 → 12 / 1200 / 84 / $0.00384,
    # step 4 (after the resume from step 3) → 24 / 2400 / 168 / $0.00768
    assert first.series(mk.EVAL_JUDGE_REQUESTS) == [(2, 12.0)]
    assert first.series(mk.EVAL_JUDGE_PROMPT_TOKENS) == [(2, 1200.0)]
    assert first.series(mk.EVAL_JUDGE_COMPLETION_TOKENS) == [(2, 84.0)]
    assert first.series(mk.EVAL_JUDGE_COST_USD) == [(2, 0.00384)]
    assert resumed.series(mk.EVAL_JUDGE_REQUESTS) == [(4, 24.0)]
    assert resumed.series(mk.EVAL_JUDGE_PROMPT_TOKENS) == [(4, 2400.0)]
    assert resumed.series(mk.EVAL_JUDGE_COST_USD) == [(4, 0.00768)]
    assert all(j.judge_output.endswith("cost_usd=0.000640") for j in first.judgments + resumed.judgments)
