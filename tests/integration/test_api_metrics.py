"""Series, keys, compare, pairs, evaluations and exports through the API."""

from __future__ import annotations

import csv
import io

import pyarrow.parquet as pq

from backend.storage import evaluations
from contracts.events import EvalRecord
from tests.integration.api_support import claim, engine_of, new_run, pair_record, write_pairs, write_points

pytest_plugins = ("tests.integration.api_fixtures",)


def _running(client, **config) -> str:
    run_id = new_run(client, **config)["id"]
    claim(client, run_id)
    return run_id


def test_nan_and_inf_come_back_as_null(client):
    run_id = _running(client)
    write_points(client, run_id, {"train/loss": [0.7, float("nan"), float("inf"), 0.5]})
    reply = client.get(f"/api/runs/{run_id}/metrics", params={"key": "train/loss"})
    assert reply.status_code == 200
    body = reply.json()
    assert body["series"] == {"train/loss": {"steps": [0, 1, 2, 3], "values": [0.7, None, None, 0.5]}}
    assert body["last_seq"] == 4  # the first four points ever stored


def test_all_keys_and_downsampling_keep_first_last_and_spike(client):
    run_id = _running(client)
    values = [1.0] * 100
    values[37] = 50.0  # the spike
    write_points(client, run_id, {"train/loss": values, "train/beta": [0.1, 0.2]})
    assert client.get(f"/api/runs/{run_id}/keys").json() == ["train/beta", "train/loss"]
    body = client.get(f"/api/runs/{run_id}/metrics", params={"max_points": 10}).json()
    assert set(body["series"]) == {"train/beta", "train/loss"}
    loss = body["series"]["train/loss"]
    assert len(loss["steps"]) <= 10
    assert loss["steps"][0] == 0 and loss["steps"][-1] == 99
    assert 37 in loss["steps"] and max(loss["values"]) == 50.0
    assert client.get(f"/api/runs/{run_id}/metrics", params={"max_points": 4}).status_code == 422


def test_compare_overlays_runs(client):
    first, second = _running(client, name="a"), _running(client, name="b")
    write_points(client, first, {"train/loss": [3.0, 2.0]})
    write_points(client, second, {"train/loss": [4.0]})
    reply = client.get("/api/compare", params=[("run", first), ("run", second), ("key", "train/loss")])
    body = reply.json()
    assert [r["name"] for r in body["runs"]] == ["a", "b"]
    assert body["series"] == {
        first: {"train/loss": {"steps": [0, 1], "values": [3.0, 2.0]}},
        second: {"train/loss": {"steps": [0], "values": [4.0]}},
    }
    assert client.get("/api/compare", params={"run": first}).status_code == 422  # key is required


def test_pairs_ordering_filters_and_texts(client):
    run_id = _running(client)
    write_pairs(
        client,
        run_id,
        [
            pair_record(0, "p1", 0.5, True),
            pair_record(0, "p2", 2.0, False),
            pair_record(1, "p1", float("nan"), True),
            pair_record(1, "p3", -1.0, False, m0=1.0),
        ],
    )
    ordered = client.get(f"/api/runs/{run_id}/pairs").json()
    assert [(p["step"], p["pair_id"]) for p in ordered] == [(0, "p2"), (0, "p1"), (1, "p3"), (1, "p1")]
    nan_row = ordered[-1]
    assert nan_row["discrepancy"] is None and nan_row["z"] is None
    assert ordered[0]["z"] == 4.0  # (2.0 − 0.0) / σ 0.5
    assert ordered[2]["z"] == -4.0  # (−1.0 − 1.0) / 0.5
    assert ordered[0]["prompt"] == "p-p2" and ordered[0]["chosen"] == "good"
    filtered = client.get(
        f"/api/runs/{run_id}/pairs", params={"kept": False, "order": "z", "descending": False}
    )
    assert [p["pair_id"] for p in filtered.json()] == ["p3", "p2"]
    assert [p["pair_id"] for p in client.get(f"/api/runs/{run_id}/pairs", params={"step": 1}).json()] == [
        "p3",
        "p1",
    ]


def test_pair_summary_lists_filtered_pairs(client):
    run_id = _running(client)
    write_pairs(client, run_id, [pair_record(0, "p1", 1.0, False), pair_record(1, "p1", 3.0, True)])
    write_pairs(client, run_id, [pair_record(1, "p2", 0.0, True)])
    summary = client.get(f"/api/runs/{run_id}/pairs/summary").json()
    assert summary == [
        {
            "pair_id": "p1",
            "times_seen": 2,
            "times_filtered": 1,
            "first_step": 0,
            "last_step": 1,
            "mean_discrepancy": 2.0,  # (1 + 3) / 2
            "mean_filtered_z": 2.0,  # its filtered occurrence: (1 − M0 0) / σ 0.5
            "prompt": "p-p1",
            "chosen": "good",
            "rejected": "bad",
        }
    ]


def test_evaluations_with_nan_rate(client):
    run_id = _running(client)
    with engine_of(client).begin() as conn:
        record = EvalRecord(10, 0.7, "oracle", "reference", 3, 1, 0, float("nan"), 0.2, 0.9)
        evaluations.insert_evaluation(conn, run_id, record)
    assert client.get(f"/api/runs/{run_id}/evaluations").json() == [
        {
            "step": 10,
            "temperature": 0.7,
            "judge": "oracle",
            "opponent": "reference",
            "wins": 3,
            "ties": 1,
            "losses": 0,
            "win_rate": None,
            "ci_low": 0.2,
            "ci_high": 0.9,
        }
    ]


def test_exports_stream_csv_and_parquet(client, settings):
    run_id = _running(client)
    write_points(client, run_id, {"train/loss": [0.5, 0.25]})
    write_pairs(client, run_id, [pair_record(0, "p1", 1.0, True)])
    reply = client.get(f"/api/runs/{run_id}/export")
    assert reply.headers["content-type"].startswith("text/csv")
    assert f"{run_id}-metrics.csv" in reply.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(reply.text)))
    assert rows[0] == ["run_id", "key", "step", "value", "wall_time"]
    assert [(r[1], r[2], r[3]) for r in rows[1:]] == [("train/loss", "0", "0.5"), ("train/loss", "1", "0.25")]
    parquet = client.get(f"/api/runs/{run_id}/export", params={"what": "pairs", "format": "parquet"})
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.column("pair_id").to_pylist() == ["p1"]
    assert list((settings.data_dir / "exports").iterdir()) == []  # the temporary file is gone
