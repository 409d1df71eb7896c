"""Untrusted bodies within budgets (issue 16.3/16.4): deep nesting, huge integers, oversized and
chunked bodies and bad Last-Event-IDs are 4xx naming what to fix, in YAML and JSON alike, on every
route that takes a body — never a 5xx, and refused quickly."""

from __future__ import annotations

import time

import pytest

from tests.integration.api_support import TINY, new_run

pytest_plugins = ("tests.integration.api_fixtures",)
DEEP = 5000


def _detail(reply, status: int) -> list[dict] | str:
    assert reply.status_code == status, reply.text
    return reply.json()["detail"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: " + "[" * DEEP + "]" * DEEP, "nesting depth"),  # flow collections
        ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 200)), "nested deeper than 32 levels"),
        ("optim:\n  seed: " + "9" * 5000 + "\n", "body:2: optim.seed: an integer of 5000 digits"),
        ("evaluation:\n  temperatures: [0.0, " + "1" * 60 + "]\n", "evaluation.temperatures.1: an integer"),
        ("a: &x [1]\nb: *x\n", "anchors/aliases are not allowed"),
    ],
)
def test_yaml_outside_the_budget_is_a_422_naming_the_line(client, queue, text, fragment):
    started = time.monotonic()
    [item] = _detail(client.post("/api/runs/yaml", content=text), 422)
    assert fragment in item["msg"]
    assert time.monotonic() - started < 5  # the audit's body froze the server for 38 s
    assert queue.sent == []


def _nest(depth: int) -> str:
    return '{"name": "x", "optim": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


@pytest.mark.parametrize("depth", [33, 100_000])
@pytest.mark.parametrize("route", ["/api/runs", "/api/groups", "/api/login", "CLONE"])
def test_deep_json_is_a_422_on_every_route(client, queue, route, depth):
    if route == "CLONE":
        route = f"/api/runs/{new_run(client)['id']}/clone"
    body = _nest(depth) if depth < 1000 else "[" * depth + "]" * depth  # 200 KB: under the size cap
    reply = client.post(route, content=body, headers={"content-type": "application/json"})
    [item] = _detail(reply, 422)
    assert item["msg"] == "JSON nested deeper than 32 levels" and item["type"] == "too_deep"


def test_json_within_the_depth_budget_still_works(client):
    reply = client.post("/api/runs", json={**TINY, "evaluation": {"temperatures": [0.5]}})
    assert reply.status_code == 201


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"seed": ' + "9" * 5000 + "}", "seed"),  # past Python's 4300-digit limit
        ('{"seed": -' + "9" * 100 + "}", "seed"),
        ('{"optim": {"max_steps": ' + "1" * 41 + "}}", "optim.max_steps"),
        ('{"evaluation": {"temperatures": [0, ' + "2" * 50 + "]}}", "evaluation.temperatures.1"),
    ],
)
def test_huge_integers_are_a_422_naming_the_field(client, queue, raw, field):
    [item] = _detail(client.post("/api/runs", content=raw, headers={"content-type": "application/json"}), 422)
    assert item["field"] == field and "digits (at most 40)" in item["msg"]
    assert queue.sent == []


def test_clone_overrides_with_a_huge_integer_name_the_override(client):
    run = new_run(client)
    raw = '{"overrides": {"optim.seed": ' + "7" * 4400 + "}}"
    reply = client.post(
        f"/api/runs/{run['id']}/clone", content=raw, headers={"content-type": "application/json"}
    )
    [item] = _detail(reply, 422)
    assert item["field"] == "overrides.optim.seed"


def test_large_bodies_are_413_with_or_without_content_length(client):
    big = b'{"name": "' + b"x" * 300_000 + b'"}'
    assert (
        client.post("/api/runs", content=big, headers={"content-type": "application/json"}).status_code == 413
    )

    def chunks():
        for _ in range(40):
            yield b"x" * 10_000  # 400 KB sent chunked: no Content-Length to refuse it up front

    reply = client.post("/api/runs", content=chunks(), headers={"content-type": "text/plain"})
    assert reply.status_code == 413 and "larger than 262144 bytes" in reply.json()["detail"]


@pytest.mark.parametrize(
    "value", [b"\xb2", b"1\xb3", "١٢٣".encode(), b"12a", b"-1", b"99999999999999999999", b"1e3"]
)  # b"\xb2" is "²" in latin-1: it passes str.isdigit() but not int()
def test_a_bad_last_event_id_is_a_400(client, value):
    run = new_run(client)
    for path in (f"/api/runs/{run['id']}/stream?until_idle_s=0.1", "/api/stream?until_idle_s=0.1"):
        reply = client.get(path, headers={"Last-Event-ID": value})
        assert reply.status_code == 400, (path, value, reply.text)
        assert "Last-Event-ID" in reply.json()["detail"]


def test_a_good_last_event_id_resumes(client):
    run = new_run(client)
    reply = client.get(f"/api/runs/{run['id']}/stream?until_idle_s=0.1", headers={"Last-Event-ID": " 0 "})
    assert reply.status_code == 200 and "event: status" in reply.text
