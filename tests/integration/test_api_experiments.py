"""The experiment routes on a real SQLite database: the presets with their run counts, launching a
group (a queued row and one ``experiments.run`` wake-up), the groups list with run counts, one group
with its runs and summary (NaN → null), 404s, input checks and the token/CSRF security."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from backend.api import create_app
from backend.settings import Settings
from backend.storage import experiment_groups, runs
from backend.storage.tables import experiment_groups as groups_table
from backend.storage.tables import runs as runs_table
from tests.integration.api_support import BASE_URL, engine_of
from tests.unit.test_storage_experiment_groups import summary

pytest_plugins = ("tests.integration.api_fixtures",)
TOKEN = "s3cret-token"


def test_presets_are_listed_with_their_run_counts(client):
    listed = {p["name"]: p for p in client.get("/api/experiments").json()}
    assert set(listed) >= {"toy-3d", "beta-dpo-ablations", "batch-vs-instance", "on-off-policy", "smollm2-hh"}
    toy = listed["toy-3d"]
    assert (toy["kind"], toy["runs"], toy["quick_runs"], toy["seeds"]) == ("toy", 6, 6, [0])
    assert toy["title"].startswith("3D-properties toy") and "1.2 min" in toy["runtime_note"]
    assert "Yan et al." in toy["citation"]
    ablations = listed["beta-dpo-ablations"]
    assert (ablations["runs"], ablations["quick_runs"]) == (15, 5)  # 5 methods × 3 seeds; quick: 1 seed
    assert (listed["batch-vs-instance"]["runs"], listed["batch-vs-instance"]["quick_runs"]) == (
        12,
        6,
    )  # 3 × 4|2
    assert listed["smollm2-hh"]["runs"] == 3  # DPO, β-DPO and the reward model's run


def test_launch_creates_a_queued_group_and_wakes_one_worker(client, queue):
    reply = client.post("/api/experiments/toy-3d", json={"quick": True})
    assert reply.status_code == 201, reply.text
    group = reply.json()
    assert group["id"].startswith("toy-3d-quick-") and group["experiment"] == "toy-3d"
    assert (group["status"], group["quick"], group["seeds"], group["planned_runs"]) == (
        "queued",
        True,
        None,
        6,
    )
    assert (group["run_counts"], group["has_summary"], group["error"]) == ({}, False, None)
    assert queue.experiments == [(group["id"], "celery")]
    assert queue.sent == []  # no run is queued: the worker creates them as the group runs
    again = client.post("/api/experiments/toy-3d", json={"quick": True}).json()
    assert again["id"] != group["id"]  # launched in the same second: a suffix keeps ids apart
    seeded = client.post("/api/experiments/beta-dpo-ablations", json={"seeds": [1, 2]}).json()
    assert (seeded["seeds"], seeded["planned_runs"], seeded["quick"]) == ([1, 2], 10, False)  # 5 × 2
    assert client.post("/api/experiments/toy-3d").status_code == 201  # the body is optional
    assert len(queue.experiments) == 4


def test_launch_refuses_unknown_presets_and_bad_bodies(client, queue):
    for name in ("nope", "..%2Fexperiments%2Ftoy-3d", "toy-3d.yaml"):
        reply = client.post(f"/api/experiments/{name}", json={})
        assert reply.status_code == 404, name
    assert client.post("/api/experiments/nope").json() == {"detail": "experiment 'nope' not found"}
    for body, field in (({"quick": "often"}, "quick"), ({"seeds": []}, "seeds"), ({"seeds": [-1]}, "seeds.0"),
                        ({"speed": 1}, "speed")):  # fmt: skip
        reply = client.post("/api/experiments/toy-3d", json=body)
        assert reply.status_code == 422, body
        assert reply.json()["detail"][0]["field"] == field
    assert queue.experiments == [] and client.get("/api/groups").json() == []


def test_groups_list_counts_runs_newest_first(client):
    first = client.post("/api/experiments/toy-3d", json={"quick": True}).json()["id"]
    second = client.post("/api/experiments/on-off-policy", json={"quick": True}).json()["id"]
    with engine_of(client).begin() as conn:
        conn.execute(groups_table.update().where(groups_table.c.id == first).values(created_at=0.0))
        for name in ("a", "b"):
            run_id = runs.create_run(conn, "{}", name, "experiment:toy-3d", first)
        runs.claim_run(conn, run_id, 1)
    listed = client.get("/api/groups").json()
    assert [g["id"] for g in listed] == [second, first]
    assert listed[1]["run_counts"] == {"queued": 1, "running": 1} and listed[0]["run_counts"] == {}
    assert [g["id"] for g in client.get("/api/groups", params={"limit": 1, "offset": 1}).json()] == [first]
    assert client.get("/api/groups", params={"limit": 0}).status_code == 422


def test_one_group_has_its_runs_in_launch_order_and_its_summary(client):
    group = client.post("/api/experiments/beta-dpo-ablations", json={"quick": True}).json()["id"]
    detail = client.get(f"/api/groups/{group}").json()
    assert (detail["runs"], detail["summary"], detail["status"]) == ([], None, "queued")
    engine = engine_of(client)
    with engine.begin() as conn:
        ids = [runs.create_run(conn, '{"loss": {"kind": "dpo"}}', n, "experiment:x", group) for n in "ab"]
        conn.execute(runs_table.update().where(runs_table.c.id == ids[0]).values(created_at=1.0))
        assert experiment_groups.claim_group(conn, group)
        assert experiment_groups.set_message(conn, group, "run 2 of 5")
        experiment_groups.store_summary(conn, group, summary(group, value=math.nan))
        experiment_groups.finish_group(conn, group, "succeeded")
    detail = client.get(f"/api/groups/{group}").json()
    assert [r["id"] for r in detail["runs"]] == ids and detail["runs"][0]["loss_kind"] == "dpo"
    assert (detail["status"], detail["message"], detail["has_summary"]) == ("succeeded", "finished", True)
    assert detail["run_counts"] == {"queued": 2}
    shown = detail["summary"]
    assert shown["table"]["rows"][0] == {
        "label": "DPO",
        "cells": [{"value": None, "low": 35.0, "high": 55.0}],
    }
    assert shown["paper"]["rows"] == [{"label": "DPO", "values": [26.19]}]
    assert shown["paper"]["citation"] == "Wu et al." and shown["verdicts"][0]["category"] == "noisy"
    assert shown["figure"]["panels"][0]["series"][0]["y"] == [None]
    assert client.get("/api/groups/nope").json() == {"detail": "group 'nope' not found"}
    assert client.get("/api/groups/" + "x" * 300).status_code == 404


@pytest.fixture
def secured(settings, queue, options):
    app = create_app(settings.model_copy(update={"api_token": TOKEN}), enqueuer=queue, options=options)
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


def test_the_routes_need_the_token_and_the_csrf_header(secured, queue):
    for method, path in (("GET", "/api/experiments"), ("GET", "/api/groups"), ("GET", "/api/groups/x"),
                         ("POST", "/api/experiments/toy-3d")):  # fmt: skip
        assert secured.request(method, path).status_code == 401, path
    csrf = secured.post("/api/login", json={"token": TOKEN}).json()["csrf_token"]
    assert secured.get("/api/experiments").status_code == 200  # the session cookie reads
    assert secured.post("/api/experiments/toy-3d", json={}).status_code == 403  # no CSRF header
    launched = secured.post("/api/experiments/toy-3d", json={}, headers={"X-CSRF-Token": csrf})
    assert launched.status_code == 201 and len(queue.experiments) == 1
    cross = secured.post(
        "/api/experiments/toy-3d", json={}, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
    )
    assert cross.status_code == 403 and len(queue.experiments) == 1


@pytest.mark.postgres
def test_groups_on_postgresql(pg_database_url, tmp_path, queue, options):
    settings = Settings(data_dir=tmp_path / "data", database_url=pg_database_url)
    app = create_app(settings, enqueuer=queue, options=options, frontend_dir=None)
    with TestClient(app, base_url=BASE_URL) as pg:
        group = pg.post("/api/experiments/toy-3d", json={"quick": True, "seeds": [0]}).json()["id"]
        with engine_of(pg).begin() as conn:
            runs.create_run(conn, "{}", "a", "experiment:toy-3d", group)
            assert experiment_groups.claim_group(conn, group) and not experiment_groups.claim_group(
                conn, group
            )
            assert experiment_groups.store_summary(conn, group, summary(group, value=math.inf))
        listed = pg.get("/api/groups").json()
        assert [(g["id"], g["status"], g["run_counts"], g["has_summary"]) for g in listed] == [
            (group, "running", {"queued": 1}, True)
        ]
        shown = pg.get(f"/api/groups/{group}").json()["summary"]
        assert shown["table"]["rows"][0]["cells"][0]["value"] is None  # inf → null
