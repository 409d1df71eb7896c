"""What the deployment allows, at submit (issue 16.2 and 16.8): every path a run reads is under the
allowed folders whatever the data source (also through clone overrides and resume), hub names come
from the operator's list, and resource caps are checked with a message naming the field and the cap."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from backend.api import create_app
from backend.queue import RecordingEnqueuer
from tests.integration.api_support import BASE_URL, TINY, new_run
from tests.integration.test_api_validation import _model_dir

pytest_plugins = ("tests.integration.api_fixtures",)


def _refusal(client, queue, body: dict) -> dict[str, str]:
    """POST a run; assert a 422 with nothing enqueued; field → message."""
    reply = client.post("/api/runs", json=body)
    assert reply.status_code == 422, reply.text
    assert queue.sent == []
    return {error["field"]: error["msg"] for error in reply.json()["detail"]}


@pytest.mark.parametrize("source", ["constructed", "hub", "file"])
@pytest.mark.parametrize("exists", [True, False])
def test_eval_path_outside_the_roots_is_refused_for_every_source(client, queue, tmp_path, source, exists):
    secret = tmp_path / "secret.jsonl"
    if exists:
        secret.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    corpora = tmp_path / "corpora"
    corpora.mkdir()
    (corpora / "train.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n' * 8)
    data = {"source": source, "eval_path": str(secret)}
    if source != "constructed":
        data["path"] = "org/prefs" if source == "hub" else str(corpora / "train.jsonl")
    found = _refusal(client, queue, {**TINY, "data": data})
    assert "data.eval_path" in found
    message = found["data.eval_path"]
    assert "exist" not in message  # the same words whether the file is there or not
    if source != "hub":
        assert "outside the folders this deployment allows" in message


def test_clone_cannot_point_eval_path_out(client, queue, tmp_path):
    run = new_run(client)
    reply = client.post(f"/api/runs/{run['id']}/clone", json={"overrides": {"data.eval_path": "/etc/passwd"}})
    assert reply.status_code == 422, reply.text
    assert [e["field"] for e in reply.json()["detail"]] == ["data.eval_path"]
    assert len(queue.sent) == 1  # only the original


def test_hub_datasets_come_from_the_operators_list(settings, options):
    hub = {"source": "hub", "path": "org/prefs"}
    queue = RecordingEnqueuer()
    app = create_app(settings, enqueuer=queue, options=options, frontend_dir=None)
    with TestClient(app, base_url=BASE_URL) as plain:
        message = _refusal(plain, queue, {**TINY, "data": hub})["data.path"]
        assert "hub dataset 'org/prefs' is not allowed here (allowed: none" in message
    listed = settings.model_copy(update={"hub_datasets": ("org/prefs",)})
    app = create_app(listed, enqueuer=queue, options=options, frontend_dir=None)
    with TestClient(app, base_url=BASE_URL) as lab:
        assert lab.post("/api/runs", json={**TINY, "data": hub}).status_code == 201
        other = {**hub, "eval_path": "evil/other:test"}
        reply = lab.post("/api/runs", json={**TINY, "data": other})
        assert reply.status_code == 422 and reply.json()["detail"][0]["field"] == "data.eval_path"
    assert len(queue.sent) == 1


@pytest.fixture
def capped(settings, queue, options):
    update = {"max_processes": 2, "max_model_params": 5_000_000}
    app = create_app(settings.model_copy(update=update), enqueuer=queue, options=options, frontend_dir=None)
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


def test_num_processes_above_the_cap_is_refused_naming_the_cap(capped, queue):
    found = _refusal(capped, queue, {**TINY, "num_processes": 4})
    assert found == {"num_processes": found["num_processes"]}
    assert "4 is above this deployment's cap of 2 (ALIGNSCOPE_MAX_PROCESSES)" in found["num_processes"]
    assert capped.post("/api/runs", json={**TINY, "num_processes": 2}).status_code == 201


def test_micro_batch_not_divisible_by_the_processes_is_refused(capped, queue):
    body = {**TINY, "num_processes": 2, "optim": {"batch_size": 3, "micro_batch_size": 3}}
    reply = capped.post("/api/runs", json=body)
    assert reply.status_code == 422
    assert "optim.micro_batch_size (3) must be divisible by num_processes (2)" in reply.text


def test_a_tiny_model_too_large_is_refused(capped, queue):
    # 8 layers of h=512, i=2048: 8 × (4·512² + 4·512 + 2·512·2048 + 2048 + 512 + 4·512) + 2·512
    # = 8 × 3,152,384 + 1,024 = 25,220,096 parameters > 5,000,000
    big = {"tiny": {"hidden_size": 512, "num_layers": 8, "num_heads": 8, "intermediate_size": 2048}}
    found = _refusal(capped, queue, {**TINY, "model": big})
    assert "about 25,220,096 parameters, above this deployment's cap of 5,000,000" in found["model.tiny"]


def test_a_pretrained_model_too_large_is_refused_from_its_safetensors_header(capped, queue, tmp_path):
    folder = _model_dir(tmp_path / "models" / "big", weights=None)
    (folder / "model.safetensors").write_bytes(_header_only({"a": [2000, 3000], "b": [3000]}))
    found = _refusal(capped, queue, {**TINY, "model": {"source": "pretrained", "path": str(folder)}})
    # 2000 × 3000 + 3000 = 6,003,000 parameters, counted from the header without reading the tensors
    assert "about 6,003,000 parameters, above this deployment's cap of 5,000,000" in found["model.path"]


def _header_only(shapes: dict[str, list[int]]) -> bytes:
    header = {
        name: {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]} for name, shape in shapes.items()
    }
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text
