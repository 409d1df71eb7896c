"""Dataset uploads that the audit broke (issue 16.4/16.5/16.6, 19.5): rows that nest too deeply or
hold 5000-digit integers, corrupt and inflating parquet, too many rows, large .json arrays. Each is
a row problem or a 4xx naming the line and the cap — never a 5xx — and a refused upload leaves
nothing on disk, nothing listed, nothing to preview. The same file twice is one dataset; a dataset
too small for a micro-batch is refused at launch with its count of valid rows."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from backend.api import create_app
from backend.api.options import ApiOptions
from tests.integration.api_support import BASE_URL, TINY

pytest_plugins = ("tests.integration.api_fixtures",)
GOOD = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}
CAPS = ApiOptions(
    max_upload_bytes=256 * 1024,
    max_line_bytes=8192,
    max_decompressed_bytes=512 * 1024,
    max_json_array_bytes=8 * 1024,
    max_upload_rows=100,
)


@pytest.fixture
def capped(settings, queue) -> Iterator[TestClient]:
    app = create_app(settings, enqueuer=queue, options=CAPS, frontend_dir=None)
    with TestClient(app, base_url=BASE_URL) as client:
        yield client


def _rows(count: int, **extra: object) -> list[dict]:
    return [{**GOOD, "prompt": f"q{i}", **extra} for i in range(count)]


def _jsonl(rows: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def _parquet(rows: list[dict], **options: object) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer, **options)
    return buffer.getvalue()


def _upload(client, content: bytes, filename: str):
    return client.post("/api/datasets", files={"file": (filename, content, "application/octet-stream")})


def _on_disk(settings) -> list[str]:
    folder = settings.data_dir / "datasets"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_deep_and_huge_rows_are_row_problems_with_their_lines(capped):
    deep = b'{"prompt": ' + b"[" * 1500 + b"]" * 1500 + b', "chosen": "a", "rejected": "b"}'
    huge = b'{"prompt": "p", "chosen": "a", "rejected": "b", "n": ' + b"9" * 5000 + b"}"
    reply = _upload(capped, _jsonl([GOOD, deep, huge, {**GOOD, "prompt": "z"}]), "mixed.jsonl")
    assert reply.status_code == 201, reply.text
    report = reply.json()["report"]
    assert (report["rows"], report["valid"]) == (4, 2)
    problems = {p["line"]: p["message"] for p in report["problems"]}
    assert "nested too deeply" in problems[2]
    assert "unreadable value" in problems[3] and "digits" in problems[3]


@pytest.mark.parametrize(
    ("content", "name", "status", "fragment"),
    [
        (b"[" * 3000 + b"]" * 3000, "deep.json", 422, "nested too deeply"),
        (b"[" + b"1" * 5000 + b"]", "int.json", 422, "an integer too long"),
        (json.dumps(_rows(400)).encode(), "big.json", 413, "a .json array is parsed whole"),
        (gzip.compress(json.dumps(_rows(400)).encode()), "big.json.gz", 413, "a .json array is parsed whole"),
        (_jsonl(_rows(101)), "many.jsonl", 413, "more than 100 rows"),
        (_parquet(_rows(101)), "many.parquet", 413, "101 rows (at most 100)"),
        (_parquet([{**GOOD, "prompt": "x" * 10_000}]), "wide.parquet", 413, "a record of"),
        (gzip.compress(b"\n" * 600_000), "blank.jsonl.gz", 413, "decompresses to more than"),
    ],
)
def test_files_past_a_budget_are_4xx_and_leave_nothing(capped, settings, content, name, status, fragment):
    reply = _upload(capped, content, name)
    assert reply.status_code == status, reply.text
    assert fragment in json.dumps(reply.json()["detail"]), reply.text
    assert _on_disk(settings) == []
    assert capped.get("/api/datasets").json() == []


def test_a_dictionary_bomb_parquet_is_refused_by_its_decoded_bytes(capped, settings):
    """50 rows sharing one 20 KB prompt: under 2 KB on disk, 1 MB decoded (the audit's 75 KB file
    cost 700 MiB). Each decoded row is counted against the caps, batch by batch."""
    content = _parquet([{**GOOD, "prompt": "y" * 20_000}] * 50, compression="zstd")
    assert len(content) < 4096
    reply = _upload(capped, content, "bomb.parquet")
    assert reply.status_code == 413 and "a record of" in reply.text
    assert _on_disk(settings) == []


def test_corrupt_parquet_is_a_422_naming_the_file_not_the_server_path(capped, settings):
    content = bytearray(_parquet(_rows(50)))
    for index in range(8, len(content) // 2):
        content[index] ^= 0xFF  # the data pages, not the footer
    reply = _upload(capped, bytes(content), "broken.parquet")
    assert reply.status_code == 422, reply.text
    message = reply.json()["detail"][0]["msg"]
    assert message.startswith("broken.parquet: cannot read parquet")
    assert str(settings.data_dir) not in message
    assert _on_disk(settings) == []


def test_an_interrupted_upload_leaves_nothing_and_old_leftovers_are_not_datasets(capped, settings):
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="cut.jsonl"\r\n\r\n' + _jsonl(
        [GOOD]
    )
    reply = capped.post(
        "/api/datasets", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert reply.status_code == 422  # the part never ended
    assert _on_disk(settings) == []
    folder = settings.data_dir / "datasets"
    leftover = folder / ("ab" * 16 + ".jsonl")  # what an older version left after a refused upload
    leftover.write_bytes(b"[" * 100_000)
    assert capped.get("/api/datasets").json() == []
    assert capped.get(f"/api/datasets/{leftover.name}/preview").status_code == 404


def test_the_same_file_twice_is_one_dataset(capped, settings):
    content = _jsonl(_rows(5))
    first = _upload(capped, content, "a.jsonl")
    again = _upload(capped, content, "renamed.jsonl")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["reused"] is True and again.json()["name"] == first.json()["name"]
    assert [d["name"] for d in capped.get("/api/datasets").json()] == [first.json()["name"]]
    assert len(_on_disk(settings)) == 2  # one file and its sidecar
    other = _upload(capped, _jsonl(_rows(6)), "a.jsonl")
    assert other.status_code == 201 and other.json()["name"] != first.json()["name"]


def test_a_launch_whose_data_cannot_fill_a_micro_batch_is_refused_with_the_count(capped, queue):
    content = _jsonl([GOOD, {"prompt": "p"}, {"prompt": "q", "chosen": "a"}])  # 1 valid row of 3
    dataset = _upload(capped, content, "tiny.jsonl").json()
    assert dataset["report"]["valid"] == 1
    reply = capped.post("/api/runs", json={**TINY, "data": {"source": "file", "path": dataset["path"]}})
    assert reply.status_code == 422
    [item] = reply.json()["detail"]
    assert item["field"] == "data.path" and item["type"] == "too_few_rows"
    assert item["msg"].startswith(
        "1 valid rows of 3 rows: 1 for training cannot fill one micro-batch of 4 pairs"
    )
    assert queue.sent == []
    eight = _upload(capped, _jsonl(_rows(8)), "eight.jsonl").json()
    held = {"source": "file", "path": eight["path"], "eval_fraction": 0.5}  # 4 held out → 4 train: enough
    assert capped.post("/api/runs", json={**TINY, "data": held}).status_code == 201
    held["eval_fraction"] = 0.6  # round(4.8) = 5 held out → 3 train
    reply = capped.post("/api/runs", json={**TINY, "data": held})
    assert reply.status_code == 422 and "5 held out by data.eval_fraction: 3 for training" in reply.text
