"""Over the API: a bad rule-judge entry point or judge price is a 422 naming its field; the next_line
task and a priced OpenAI judge are accepted as they are."""

from __future__ import annotations

from tests.integration.api_support import TINY

pytest_plugins = ("tests.integration.api_fixtures",)


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
    judge = {"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m"}
    [(field, message)] = _errors(client, queue, {**judge, "usd_per_million_output_tokens": -0.5})
    assert field == "evaluation.judge.usd_per_million_output_tokens"
    assert message.startswith("Input should be greater than or equal to 0 (accepted: a number, 0 ≤ ")


def test_next_line_task_and_priced_judge_are_accepted(client, queue):
    judge = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:1/v1",
        "model": "m",
        "usd_per_million_input_tokens": 2.5,
        "usd_per_million_output_tokens": 10,
    }
    body = {
        **TINY,
        "data": {"constructed": {"tasks": ["next_line"], "context_lines": 1}},
        "evaluation": {"at_end": True, "judge": judge},
    }
    reply = client.post("/api/runs", json=body)
    assert reply.status_code == 201, reply.text
    config = reply.json()["config"]
    assert config["data"]["constructed"]["tasks"] == ["next_line"]
    assert config["evaluation"]["judge"]["usd_per_million_output_tokens"] == 10.0
