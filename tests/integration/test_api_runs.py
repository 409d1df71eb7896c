"""The runs routes on a real SQLite database: create, list, get, stop, resume, clone, groups, delete,
YAML configs, presets, schema, health."""

from __future__ import annotations

from fastapi.testclient import TestClient

from backend.api import create_app
from backend.storage import runs
from tests.integration.api_support import BASE_URL, claim, engine_of, new_run

pytest_plugins = ("tests.integration.api_fixtures",)


def test_create_run_returns_the_queued_row_and_wakes_a_worker(client, queue):
    run = new_run(client, loss={"kind": "ipo", "beta": 0.25}, device="cuda")
    assert run["status"] == "queued"
    assert run["attempt"] == 1
    assert run["loss_kind"] == "ipo"
    assert run["beta0"] == 0.25
    assert run["eta_s"] is None
    assert run["config"]["optim"]["max_steps"] == 5
    assert queue.sent == [(run["id"], 1, "gpu")]  # device cuda → the gpu queue
    assert client.get(f"/api/runs/{run['id']}").json() == run


def test_list_filters_by_status_name_and_group_newest_first(client):
    first = new_run(client, name="alpha", group="g1")
    second = new_run(client, name="beta-run", group="g1")
    new_run(client, name="gamma")
    client.post(f"/api/runs/{first['id']}/stop")
    listed = client.get("/api/runs").json()
    assert [r["name"] for r in listed] == ["gamma", "beta-run", "alpha"]
    assert [r["id"] for r in client.get("/api/runs", params={"group": "g1"}).json()] == [
        second["id"],
        first["id"],
    ]
    assert [r["name"] for r in client.get("/api/runs", params={"status": "stopped"}).json()] == ["alpha"]
    assert [r["name"] for r in client.get("/api/runs", params={"name": "ETA"}).json()] == ["beta-run"]
    assert len(client.get("/api/runs", params={"limit": 1, "offset": 2}).json()) == 1


def test_unknown_run_ids_are_404_with_the_id_named(client):
    for method, path in [
        ("GET", "/api/runs/nope"),
        ("POST", "/api/runs/nope/stop"),
        ("POST", "/api/runs/nope/resume"),
        ("DELETE", "/api/runs/nope"),
        ("GET", "/api/runs/nope/metrics"),
        ("GET", "/api/runs/nope/keys"),
        ("GET", "/api/runs/nope/pairs"),
        ("GET", "/api/runs/nope/pairs/summary"),
        ("GET", "/api/runs/nope/evaluations"),
        ("GET", "/api/runs/nope/export"),
        ("GET", "/api/runs/nope/stream"),
        ("GET", "/api/compare?run=nope&key=train/loss"),
    ]:
        reply = client.request(method, path)
        assert reply.status_code == 404, (method, path)
        assert reply.json() == {"detail": "run 'nope' not found"}
    assert client.post("/api/runs/nope/clone", json={"overrides": {}}).status_code == 404


def test_stop_queued_is_immediate_and_running_sets_the_flag(client):
    queued, running = new_run(client), new_run(client)
    stopped = client.post(f"/api/runs/{queued['id']}/stop").json()
    assert (stopped["status"], stopped["stop_requested"]) == ("stopped", False)
    assert stopped["finished_at"] is not None
    claim(client, running["id"])
    flagged = client.post(f"/api/runs/{running['id']}/stop").json()
    assert (flagged["status"], flagged["stop_requested"]) == ("running", True)


def test_resume_copies_the_checkpoint_into_a_new_run(client, queue, settings):
    parent = new_run(client)
    claim(client, parent["id"])
    folder = settings.data_dir / "checkpoints" / parent["id"]
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "state.pt").write_bytes(b"state")
    assert client.post(f"/api/runs/{parent['id']}/resume").status_code == 409  # still running
    with engine_of(client).begin() as conn:
        runs.finish_run(conn, parent["id"], 1, "stopped")
    reply = client.post(f"/api/runs/{parent['id']}/resume")
    assert reply.status_code == 201
    child = reply.json()
    assert (child["parent_id"], child["status"], child["config"]) == (
        parent["id"],
        "queued",
        parent["config"],
    )
    copied = settings.data_dir / "checkpoints" / child["id"]
    assert (copied / "model.safetensors").read_bytes() == b"weights"
    assert (copied / "state.pt").read_bytes() == b"state"
    with engine_of(client).connect() as conn:  # recorded: a worker that cannot see it fails the run
        assert runs.get_run(conn, child["id"]).checkpoint_path == str(copied)
    assert queue.sent[-1] == (child["id"], 1, "celery")


def test_resume_copies_a_sharded_fsdp_checkpoint(client, settings):
    """An FSDP run's checkpoint has ``sharded/`` (torch.distributed.checkpoint) instead of the weights
    file; it resumes too, its folder copied whole."""
    parent = new_run(client)
    claim(client, parent["id"])
    folder = settings.data_dir / "checkpoints" / parent["id"]
    (folder / "sharded").mkdir(parents=True)
    (folder / "sharded" / ".metadata").write_bytes(b"plan")
    (folder / "sharded" / "__0_0.distcp").write_bytes(b"shard")
    (folder / "state.pt").write_bytes(b"state")
    with engine_of(client).begin() as conn:
        runs.finish_run(conn, parent["id"], 1, "stopped")
    reply = client.post(f"/api/runs/{parent['id']}/resume")
    assert reply.status_code == 201, reply.text
    copied = settings.data_dir / "checkpoints" / reply.json()["id"]
    assert (copied / "sharded" / "__0_0.distcp").read_bytes() == b"shard"
    other = new_run(client)  # the parent itself is now "already resumed"
    claim(client, other["id"])
    shards = settings.data_dir / "checkpoints" / other["id"] / "sharded"
    shards.mkdir(parents=True)
    (shards / "__0_0.distcp").write_bytes(b"shard")  # shards without their plan: not a checkpoint
    (shards.parent / "state.pt").write_bytes(b"state")
    with engine_of(client).begin() as conn:
        runs.finish_run(conn, other["id"], 1, "stopped")
    refused = client.post(f"/api/runs/{other['id']}/resume")
    assert refused.status_code == 409 and "no checkpoint to resume from" in refused.text


def test_resume_without_checkpoint_is_409(client):
    run = new_run(client)
    client.post(f"/api/runs/{run['id']}/stop")
    reply = client.post(f"/api/runs/{run['id']}/resume")
    assert reply.status_code == 409
    assert "no checkpoint" in reply.json()["detail"]


def test_clone_applies_dotted_overrides(client):
    parent = new_run(client)
    reply = client.post(
        f"/api/runs/{parent['id']}/clone",
        json={"overrides": {"optim.lr": 1e-10, "loss.beta": 0.3, "name": "yes", "beta_dpo.enabled": True}},
    )
    assert reply.status_code == 201, reply.text
    child = reply.json()
    assert child["parent_id"] == parent["id"]
    assert child["config"]["optim"]["lr"] == 1e-10
    assert child["config"]["loss"]["beta"] == 0.3
    assert child["name"] == "yes"  # a JSON string stays a string (not YAML's boolean yes)
    assert child["config"]["beta_dpo"]["enabled"] is True


def test_clone_with_a_bad_override_names_the_field(client):
    parent = new_run(client)
    reply = client.post(f"/api/runs/{parent['id']}/clone", json={"overrides": {"optim.lr": 10.0}})
    assert reply.status_code == 422
    assert [e["field"] for e in reply.json()["detail"]] == ["optim.lr"]
    bad_key = client.post(f"/api/runs/{parent['id']}/clone", json={"overrides": {"optim.lr=1": 1}})
    assert bad_key.json()["detail"][0]["field"] == "overrides.optim.lr=1"


def test_group_launches_the_four_beta_dpo_ablations(client, queue):
    reply = client.post("/api/groups", json={"group": "abl", "base": {**_tiny("base")}})
    assert reply.status_code == 201, reply.text
    made = reply.json()
    switches = [
        (
            r["name"],
            r["group"],
            *(r["config"]["beta_dpo"][k] for k in ("enabled", "dynamic_beta", "filtering")),
        )
        for r in made
    ]
    assert switches == [
        ("base-dpo", "abl", False, True, True),
        ("base-dynamic-beta", "abl", True, True, False),
        ("base-filtering", "abl", True, False, True),
        ("base-beta-dpo", "abl", True, True, True),
    ]
    assert [sent[0] for sent in queue.sent] == [r["id"] for r in made]


def test_delete_removes_the_run_and_refuses_a_running_one(client, settings):
    run, running = new_run(client), new_run(client)
    (settings.data_dir / "checkpoints" / run["id"]).mkdir(parents=True)
    assert client.delete(f"/api/runs/{run['id']}").status_code == 204
    assert client.get(f"/api/runs/{run['id']}").status_code == 404
    assert not (settings.data_dir / "checkpoints" / run["id"]).exists()
    claim(client, running["id"])
    assert client.delete(f"/api/runs/{running['id']}").status_code == 409


def test_yaml_config_is_accepted_and_unsafe_yaml_refused(client):
    ok = client.post("/api/runs/yaml", content="name: from-yaml\noptim: {max_steps: 3}\n")
    assert ok.status_code == 201, ok.text
    assert ok.json()["config"]["optim"]["max_steps"] == 3
    tagged = client.post("/api/runs/yaml", content="name: !!python/object/apply:os.system ['true']\n")
    assert tagged.status_code == 422
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    refused = client.post("/api/runs/yaml", content=bomb)
    assert refused.status_code == 422
    assert "anchors/aliases" in refused.json()["detail"][0]["msg"]
    invalid = client.post("/api/runs/yaml", content="optim: {lr: 1.0e10}\n")
    assert [e["field"] for e in invalid.json()["detail"]] == ["optim.lr"]
    assert client.post("/api/runs/yaml", content="x" * 300_000).status_code == 413
    assert client.get("/api/runs").json()[0]["name"] == "from-yaml"  # nothing else was written


def test_presets_schema_and_health(client):
    presets = {p["name"]: p["config"] for p in client.get("/api/presets").json()}
    assert presets["tiny-dpo"]["preset"] == "tiny-dpo"
    assert client.get("/api/schema").json()["title"] == "RunConfig"
    assert client.get("/api/health").json() == {
        "status": "ok",
        "database": "ok",
        "broker": "none",
        "auth": False,
    }


def _tiny(name: str) -> dict:
    return {"name": name, "optim": {"max_steps": 5, "batch_size": 4, "micro_batch_size": 4}}


def test_frontend_folder_is_served_at_the_root(settings, queue, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>AlignScope</h1>")
    app = create_app(settings, enqueuer=queue, frontend_dir=site)
    with TestClient(app, base_url=BASE_URL) as browser:
        assert browser.get("/").text == "<h1>AlignScope</h1>"
        assert browser.get("/api/health").json()["status"] == "ok"  # the API still wins
