"""A resumed run through the API (issue 19 item 1): resume reads the checkpoint's step from its
safetensors header (no torch), and the child's metrics, keys, pairs, pair summary, compare and both
exports cover parent → child with the resume point in ``lineage``."""

from __future__ import annotations

import csv
import io

import numpy as np
from safetensors.numpy import save_file

from backend.storage import runs
from tests.integration.api_support import claim, engine_of, new_run, pair_record, write_pairs, write_points

pytest_plugins = ("tests.integration.api_fixtures",)


def _stopped_parent_with_checkpoint(client, settings, checkpoint_step: int | None) -> str:
    parent = new_run(client)["id"]
    claim(client, parent)
    write_points(
        client, parent, {"train/loss": [1.0] * 10, "train/3d/alert/degradation": [0, 0, 0, 1] + [0] * 6}, 1
    )
    write_pairs(
        client, parent, [pair_record(step, f"p{step}", 0.1 * step, step % 2 == 0) for step in range(1, 11)]
    )
    folder = settings.data_dir / "checkpoints" / parent
    folder.mkdir(parents=True)
    metadata = None if checkpoint_step is None else {"step": str(checkpoint_step)}
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(folder / "model.safetensors"), metadata=metadata)
    (folder / "state.pt").write_bytes(b"state")
    with engine_of(client).begin() as conn:
        runs.heartbeat(conn, parent, 1, step=10, total_steps=20)
        runs.finish_run(conn, parent, 1, "stopped")
    return parent


def test_a_resumed_run_reads_as_parent_then_child(client, settings):
    parent = _stopped_parent_with_checkpoint(client, settings, checkpoint_step=7)
    child = client.post(f"/api/runs/{parent}/resume").json()
    assert (child["parent_id"], child["resume_step"]) == (parent, 7)
    claim(client, child["id"])
    write_points(client, child["id"], {"train/loss": [2.0] * 5}, 8)
    write_pairs(client, child["id"], [pair_record(step, f"p{step}", 0.0, True) for step in range(8, 13)])

    body = client.get(f"/api/runs/{child['id']}/metrics").json()
    assert body["series"]["train/loss"] == {"steps": list(range(1, 13)), "values": [1.0] * 7 + [2.0] * 5}
    assert body["series"]["train/3d/alert/degradation"]["values"][3] == 1  # the parent's D2 alert
    assert [(s["run_id"], s["after_step"], s["until_step"]) for s in body["lineage"]] == [
        (parent, None, 7),
        (child["id"], 7, None),
    ]
    assert client.get(f"/api/runs/{child['id']}/keys").json() == ["train/3d/alert/degradation", "train/loss"]
    steps = [
        p["step"]
        for p in client.get(
            f"/api/runs/{child['id']}/pairs", params={"order": "step", "descending": False}
        ).json()
    ]
    assert steps == list(range(1, 13))
    at_4 = client.get(f"/api/runs/{child['id']}/pairs", params={"step": 4}).json()
    assert [(p["pair_id"], p["kept"], p["prompt"]) for p in at_4] == [("p4", True, "p-p4")]
    filtered = client.get(f"/api/runs/{child['id']}/pairs/summary").json()
    assert sorted(p["pair_id"] for p in filtered) == ["p1", "p3", "p5", "p7"]  # the parent's, up to 7
    compared = client.get("/api/compare", params={"run": [child["id"]], "key": ["train/loss"]}).json()
    assert compared["series"][child["id"]]["train/loss"]["steps"] == list(range(1, 13))

    exported = client.get(f"/api/runs/{child['id']}/export", params={"what": "metrics", "format": "csv"})
    rows = [r for r in csv.DictReader(io.StringIO(exported.text)) if r["key"] == "train/loss"]
    assert [(r["run_id"], int(r["step"])) for r in rows] == [(parent, s) for s in range(1, 8)] + [
        (child["id"], s) for s in range(8, 13)
    ]
    exported = client.get(f"/api/runs/{child['id']}/export", params={"what": "pairs", "format": "csv"})
    pairs = list(csv.DictReader(io.StringIO(exported.text)))
    assert [int(p["step"]) for p in pairs] == list(range(1, 13))
    assert pairs[0]["prompt"] == "p-p1" and pairs[0]["chosen"] == "good" and float(pairs[0]["z"]) == 0.2


def test_a_checkpoint_without_step_metadata_resumes_after_the_parents_last_step(client, settings):
    parent = _stopped_parent_with_checkpoint(client, settings, checkpoint_step=None)
    child = client.post(f"/api/runs/{parent}/resume").json()
    assert child["resume_step"] == 10  # where a stopped run checkpoints
