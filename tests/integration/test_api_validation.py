"""Bad configs: each is a 422 naming the field, and nothing is written or enqueued."""

from __future__ import annotations

import json
import math

import pytest

from tests.integration.api_support import TINY

pytest_plugins = ("tests.integration.api_fixtures",)


def _refused(client, queue, body: dict | str) -> list[str]:
    """POST a config; assert a 422 with nothing stored or sent; return the named fields."""
    if isinstance(body, dict):
        reply = client.post("/api/runs", json=body)
    else:
        reply = client.post("/api/runs", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 422, reply.text
    assert client.get("/api/runs").json() == []
    assert queue.sent == []
    return [error["field"] for error in reply.json()["detail"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"optim": {"lr": 1e10}}, "optim.lr"),
        ({"optim": {"max_steps": 10**12}}, "optim.max_steps"),
        ({"optim": {"batch_size": 0}}, "optim.batch_size"),
        ({"loss": {"kind": "dpo", "beta": 0}}, "loss.beta"),
        ({"loss": {"kind": "dpo", "beta": -0.1}}, "loss.beta"),
        ({"optim": {"momentum": 0.9}}, "optim.momentum"),
        ({"surprise": 1}, "surprise"),
        ({"data": {"max_length": 10**9}}, "data.max_length"),
    ],
)
def test_bad_values_name_their_field(client, queue, body, field):
    assert _refused(client, queue, body) == [field]


def test_nan_beta_is_refused_without_echoing_the_nan(client, queue):
    raw = '{"loss": {"kind": "dpo", "beta": NaN}}'  # Python's json accepts the NaN literal
    assert _refused(client, queue, raw) == ["loss.beta"]


def test_error_items_carry_loc_msg_and_type(client):
    detail = client.post("/api/runs", json={"optim": {"lr": 1e10}}).json()["detail"]
    assert detail == [
        {
            "loc": ["body", "optim", "lr"],
            "field": "optim.lr",
            "msg": "Input should be less than or equal to 1 (accepted: a number, 0 < lr ≤ 1)",
            "type": "less_than_equal",
        }
    ]


def test_model_path_with_dotdot_outside_the_roots(client, queue, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "secret").mkdir()
    body = {**TINY, "model": {"source": "pretrained", "path": str(tmp_path / "models" / ".." / "secret")}}
    assert _refused(client, queue, body) == ["model.path"]


def test_symlink_out_of_the_roots_is_refused(client, queue, tmp_path):
    (tmp_path / "models").mkdir()
    outside = _model_dir(tmp_path / "elsewhere")
    (tmp_path / "models" / "link").symlink_to(outside, target_is_directory=True)
    body = {**TINY, "model": {"source": "pretrained", "path": str(tmp_path / "models" / "link")}}
    assert _refused(client, queue, body) == ["model.path"]


def test_symlinked_weights_pointing_out_are_refused(client, queue, tmp_path):
    folder = _model_dir(tmp_path / "models" / "m", weights=None)
    (tmp_path / "stolen.safetensors").write_bytes(b"x")
    (folder / "model.safetensors").symlink_to(tmp_path / "stolen.safetensors")
    body = {**TINY, "model": {"source": "pretrained", "path": str(folder)}}
    assert _refused(client, queue, body) == ["model.path"]


def test_remote_code_model_dir_is_refused(client, queue, tmp_path):
    folder = _model_dir(tmp_path / "models" / "remote", config={"auto_map": {"AutoModel": "x.Model"}})
    reply = client.post("/api/runs", json={**TINY, "model": {"source": "pretrained", "path": str(folder)}})
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["type"] == "remote_code"
    assert queue.sent == []


def test_pickle_only_model_dir_is_refused(client, queue, tmp_path):
    folder = _model_dir(tmp_path / "models" / "pickled", weights="pytorch_model.bin")
    reply = client.post("/api/runs", json={**TINY, "model": {"source": "pretrained", "path": str(folder)}})
    assert reply.status_code == 422
    assert "only pickle weights" in reply.json()["detail"][0]["msg"]


def test_safetensors_model_dir_is_accepted_with_its_resolved_path(client, tmp_path):
    folder = _model_dir(tmp_path / "models" / "good")
    relative_twist = str(tmp_path / "models" / "good" / ".." / "good")
    reply = client.post("/api/runs", json={**TINY, "model": {"source": "pretrained", "path": relative_twist}})
    assert reply.status_code == 201, reply.text
    assert reply.json()["config"]["model"]["path"] == str(folder.resolve())


def test_gguf_file_must_be_a_plain_name(client, queue, tmp_path):
    folder = tmp_path / "models" / "g"
    folder.mkdir(parents=True)
    body = {**TINY, "model": {"source": "gguf", "path": str(folder), "gguf_file": "../../etc/passwd.gguf"}}
    assert _refused(client, queue, body) == ["model.gguf_file"]


def test_dataset_paths_must_lie_under_the_dataset_roots(client, queue, tmp_path):
    (tmp_path / "corpora").mkdir()
    rows = "".join(f'{{"prompt": "p{i}", "chosen": "a", "rejected": "b"}}\n' for i in range(4))
    (tmp_path / "corpora" / "ok.jsonl").write_text(rows)  # four rows fill TINY's micro-batch of 4
    (tmp_path / "private.jsonl").write_text("{}\n")
    for path in (str(tmp_path / "private.jsonl"), str(tmp_path / "corpora" / ".." / "private.jsonl")):
        assert _refused(client, queue, {**TINY, "data": {"source": "file", "path": path}}) == ["data.path"]
    eval_out = {"source": "file", "path": str(tmp_path / "corpora" / "ok.jsonl"), "eval_path": "/etc/hosts"}
    assert _refused(client, queue, {**TINY, "data": eval_out}) == ["data.eval_path"]
    hub = {"source": "hub", "path": "../../etc"}
    assert _refused(client, queue, {**TINY, "data": hub}) == ["data.path"]
    good = client.post("/api/runs", json={**TINY, "data": {"source": "file", "path": eval_out["path"]}})
    assert good.status_code == 201


def _model_dir(folder, config: dict | None = None, weights: str | None = "model.safetensors"):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config or {"model_type": "gpt_neox"}))
    if weights:
        (folder / weights).write_bytes(safetensors_bytes({"w": [2, 2]}))
    return folder


def safetensors_bytes(shapes: dict[str, list[int]]) -> bytes:
    """A float32 safetensors file of zero tensors with ``shapes`` (its header, then the data)."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 4 * math.prod(shape)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + b"\0" * offset


def test_a_loss_without_kind_says_which_kinds_and_how_to_write_it(client, queue):
    reply = client.post("/api/runs", json={"loss": {"beta": 0.2}})
    assert reply.status_code == 422 and queue.sent == []
    [item] = reply.json()["detail"]
    assert item["field"] == "loss.kind" and item["loc"] == ["body", "loss", "kind"]
    assert "Unable to extract tag" not in item["msg"]
    for kind in ("'dpo'", "'ipo'", "'hinge'", "'robust'", "'sppo_hard'", "'flex'"):
        assert kind in item["msg"]
    assert "loss: {kind: dpo" in item["msg"] and '{"kind": "dpo"' in item["msg"]


def test_nan_beta_is_named_as_written_with_the_accepted_range(client, queue):
    raw = '{"loss": {"kind": "ipo", "beta": NaN}}'
    reply = client.post("/api/runs", content=raw, headers={"content-type": "application/json"})
    [item] = reply.json()["detail"]
    assert item["loc"] == ["body", "loss", "beta"] and item["field"] == "loss.beta"
    assert "finite number" in item["msg"] and "0 < beta ≤ 100" in item["msg"]


@pytest.mark.parametrize(
    ("body", "field", "guess"),
    [
        ({"optim": {"lrr": 0.1}}, "optim.lrr", "lr"),
        ({"loss": {"kind": "dpo", "betta": 0.1}}, "loss.betta", "beta"),
        ({"beta_dp": {"enabled": True}}, "beta_dp", "beta_dpo"),
        ({"loss": {"kind": "Hinge"}}, "loss.kind", "hinge"),
    ],
)
def test_a_misspelt_name_gets_did_you_mean(client, queue, body, field, guess):
    [item] = client.post("/api/runs", json=body).json()["detail"]
    assert item["field"] == field
    assert f"did you mean '{guess}'?" in item["msg"]


def test_an_unknown_field_lists_what_its_section_accepts(client, queue):
    [item] = client.post("/api/runs", json={"optim": {"zzz": 1}}).json()["detail"]
    assert item["field"] == "optim.zzz" and "did you mean" not in item["msg"]
    assert "optim accepts: optimizer, lr," in item["msg"]


@pytest.mark.parametrize(
    ("raw", "line", "column"),
    [
        ('{"optim": {"lr": 1e-3,}}', 1, 23),  # a trailing comma: the "}" after it
        ('{\n  "name": "x"\n  "seed": 1\n}', 3, 3),  # a missing comma before "seed"
    ],
)
def test_malformed_json_names_line_and_column(client, queue, raw, line, column):
    reply = client.post("/api/runs", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code == 422 and queue.sent == []
    [item] = reply.json()["detail"]
    assert item["type"] == "json_invalid"
    assert f"line {line}, column {column}" in item["msg"]


def test_a_model_level_check_names_its_field(client, queue):
    [item] = client.post("/api/runs", json={"model": {"source": "pretrained"}}).json()["detail"]
    assert item["field"] == "model.path" and "required" in item["msg"]
