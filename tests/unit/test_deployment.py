"""contracts.deployment: the one check of a RunConfig against what the deployment allows (issue 16.1,
16.2, 16.8), shared by the API and the worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.config import RunConfig, TinyModelSpec
from contracts.deployment import Allowed, JudgeEndpoint, parse_judge_endpoints, refusals, tiny_params


def _fields(config: dict, allowed: Allowed) -> dict[str, str]:
    return {r.field: r.message for r in refusals(RunConfig.model_validate(config), allowed)}


def test_tiny_params_by_hand():
    # h=8, i=16, 2 layers: attention 4·64 + 4·8 = 288; MLP 2·8·16 + 16 + 8 = 280; LayerNorms 32
    # → 600 per layer; 2 × 600 + final LayerNorm 16 = 1216; with a vocab of 10: + 2·10·8 = 1376
    spec = TinyModelSpec(hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16)
    assert tiny_params(spec) == 1216 and tiny_params(spec, vocab=10) == 1376


def test_every_path_field_is_checked_and_symlinks_are_followed(tmp_path: Path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "escape").symlink_to(tmp_path)  # a link inside the root pointing out of it
    allowed = Allowed(dataset_roots=(root,), model_roots=(tmp_path / "models",))
    config = {
        "data": {
            "source": "file",
            "path": str(root / "escape" / "x.jsonl"),
            "eval_path": str(root / "ok.jsonl"),
        },
        "evaluation": {"judge": {"kind": "reward_model", "path": "/etc"}},
        "model": {"source": "pretrained", "path": str(root / ".." / "models" / "m")},
    }
    found = _fields(config, allowed)
    assert set(found) == {"data.path", "evaluation.judge.path"}
    assert "outside the folders this deployment allows" in found["data.path"]


def test_judges_and_hub_names_come_from_the_lists():
    lab = JudgeEndpoint(base_url="https://judge.lab/v1", models=("a",))
    allowed = Allowed(judge_endpoints={"lab": lab}, rule_judges=("mine.rules:*",), hub_datasets=("org/x",))
    assert (
        _fields({"evaluation": {"judge": {"kind": "openai", "endpoint": "lab", "model": "a"}}}, allowed) == {}
    )
    assert set(
        _fields({"evaluation": {"judge": {"kind": "openai", "endpoint": "lab", "model": "b"}}}, allowed)
    ) == {"evaluation.judge.model"}
    assert _fields({"evaluation": {"judge": {"kind": "rule", "entry_point": "mine.rules:f"}}}, allowed) == {}
    assert set(
        _fields({"evaluation": {"judge": {"kind": "rule", "entry_point": "mine.other:f"}}}, allowed)
    ) == {"evaluation.judge.entry_point"}
    assert _fields({"data": {"source": "hub", "path": "org/x:train"}}, allowed) == {}
    assert set(_fields({"data": {"source": "hub", "path": "org/y"}}, allowed)) == {"data.path"}


def test_endpoint_settings_are_validated_with_the_variable_named():
    assert parse_judge_endpoints(None) == {}
    good = parse_judge_endpoints(
        '{"lab": {"base_url": "http://h:1/v1", "api_key_env": "K", "models": ["*"]}}'
    )
    assert good["lab"].api_key_env == "K"
    for text, fragment in [
        ("[1]", "expected an object"),
        ("{", "not valid JSON"),
        ('{"lab": {"base_url": "file:///etc", "models": ["a"]}}', "endpoint 'lab'"),
        ('{"lab": {"base_url": "http://h", "models": []}}', "endpoint 'lab'"),
        ('{"a b": {"base_url": "http://h", "models": ["a"]}}', "endpoint name 'a b'"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            parse_judge_endpoints(text)
