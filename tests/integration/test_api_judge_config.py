"""Over the API: a bad rule-judge entry point or judge price is a 422 naming its field; the next_line
task and a priced OpenAI judge are accepted as they are. A judge reaches only what the operator
configured: a named endpoint offering the model, an entry point on the allow-list (issue 16.1)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend.api import create_app
from contracts.deployment import JudgeEndpoint
from tests.integration.api_support import BASE_URL, TINY

pytest_plugins = ("tests.integration.api_fixtures",)
LAB = JudgeEndpoint(base_url="http://127.0.0.1:1/v1", api_key_env="LAB_JUDGE_KEY", models=("m", "m2"))


@pytest.fixture
def operated(settings, queue, options):
    """An app whose operator configured the endpoint 'lab' and allowed one rule-judge module."""
    update = {"judge_endpoints": {"lab": LAB}, "rule_judges": ("lab_judges.rules:*", "other.mod:score")}
    app = create_app(settings.model_copy(update=update), enqueuer=queue, options=options, frontend_dir=None)
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


def _errors(client, queue, judge: dict) -> list[tuple[str, str]]:
    """POST a config with ``judge``; assert a 422 with nothing enqueued; (field, message) per error."""
    reply = client.post("/api/runs", json={**TINY, "evaluation": {"at_end": True, "judge": judge}})
    assert reply.status_code == 422, reply.text
    assert queue.sent == []
    return [(error["field"], error["msg"]) for error in reply.json()["detail"]]


def test_file_path_entry_point_is_a_422_naming_the_field(client, queue):
    [(field, message)] = _errors(client, queue, {"kind": "rule", "entry_point": "/srv/judges/mine.py:score"})
    assert field == "evaluation.judge.entry_point"
    assert "file paths are not accepted" in message and "'package.module:function'" in message


def test_standard_library_entry_point_is_a_422(client, queue):
    [(field, message)] = _errors(client, queue, {"kind": "rule", "entry_point": "shutil:rmtree"})
    assert field == "evaluation.judge.entry_point" and "standard-library module" in message


def test_negative_price_is_a_422_naming_the_field(client, queue):
    judge = {"kind": "openai", "endpoint": "lab", "model": "m"}
    [(field, message)] = _errors(client, queue, {**judge, "usd_per_million_output_tokens": -0.5})
    assert field == "evaluation.judge.usd_per_million_output_tokens"
    assert message.startswith("Input should be greater than or equal to 0 (accepted: a number, 0 ≤ ")


def test_next_line_task_and_priced_judge_are_accepted(operated, queue):
    judge = {
        "kind": "openai",
        "endpoint": "lab",
        "model": "m",
        "usd_per_million_input_tokens": 2.5,
        "usd_per_million_output_tokens": 10,
    }
    body = {
        **TINY,
        "data": {"constructed": {"tasks": ["next_line"], "context_lines": 1}},
        "evaluation": {"at_end": True, "judge": judge},
    }
    reply = operated.post("/api/runs", json=body)
    assert reply.status_code == 201, reply.text
    config = reply.json()["config"]
    assert config["data"]["constructed"]["tasks"] == ["next_line"]
    assert config["evaluation"]["judge"]["usd_per_million_output_tokens"] == 10.0


@pytest.mark.parametrize("key", ["base_url", "api_key_env"])
def test_a_config_cannot_name_a_url_or_an_environment_variable(operated, queue, key):
    judge = {"kind": "openai", "endpoint": "lab", "model": "m", key: "DATABASE_URL"}
    [(field, message)] = _errors(operated, queue, judge)
    assert field == f"evaluation.judge.{key}"  # the model-level check names the field it is about
    assert f"evaluation.judge.{key} is set by the operator" in message and "endpoint" in message


def test_unknown_endpoint_and_unoffered_model_are_422s(operated, queue):
    [(field, message)] = _errors(operated, queue, {"kind": "openai", "endpoint": "attacker", "model": "m"})
    assert field == "evaluation.judge.endpoint"
    assert "unknown judge endpoint 'attacker'" in message and "known: lab" in message
    assert "127.0.0.1" not in message  # the endpoint's URL is the operator's, not shown
    [(field, message)] = _errors(operated, queue, {"kind": "openai", "endpoint": "lab", "model": "gpt-9"})
    assert field == "evaluation.judge.model" and "offered: m, m2" in message


def test_no_endpoint_is_configured_by_default(client, queue):
    [(field, message)] = _errors(client, queue, {"kind": "openai", "endpoint": "lab", "model": "m"})
    assert field == "evaluation.judge.endpoint" and "none are configured" in message


def test_rule_judge_entry_points_come_from_the_operators_list(operated, queue):
    [(field, message)] = _errors(operated, queue, {"kind": "rule", "entry_point": "evil.mod:score"})
    assert field == "evaluation.judge.entry_point"
    assert "not an allowed rule judge" in message and "ALIGNSCOPE_RULE_JUDGES" in message
    [(field, _)] = _errors(operated, queue, {"kind": "rule", "entry_point": "other.mod:other"})
    assert field == "evaluation.judge.entry_point"
    for entry_point in ("lab_judges.rules:exact", "other.mod:score"):
        body = {**TINY, "evaluation": {"at_end": True, "judge": {"kind": "rule", "entry_point": entry_point}}}
        assert operated.post("/api/runs", json=body).status_code == 201
    assert len(queue.sent) == 2


def test_allowances_name_endpoints_and_models_but_never_urls_or_keys(operated):
    reply = operated.get("/api/allowances")
    assert reply.status_code == 200
    body = reply.json()
    assert body["judge_endpoints"] == [{"name": "lab", "models": ["m", "m2"]}]
    assert body["rule_judges"] == ["lab_judges.rules:*", "other.mod:score"]
    assert body["max_processes"] >= 1 and body["max_model_params"] == 2_000_000_000
    assert "127.0.0.1" not in reply.text and "LAB_JUDGE_KEY" not in reply.text
