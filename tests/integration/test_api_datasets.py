"""Dataset upload (streamed, capped, generated names), list and preview with line-numbered problems.
The test options cap uploads at 64 KiB and JSONL lines at 1 KiB."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.api_support import TINY

GOOD = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}

pytest_plugins = ("tests.integration.api_fixtures",)


def _jsonl(*rows: object) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def _upload(client, content: bytes, filename: str = "pairs.jsonl"):
    return client.post("/api/datasets", files={"file": (filename, content, "application/octet-stream")})


def _stored(settings) -> list[str]:
    folder = settings.data_dir / "datasets"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_upload_stores_under_a_generated_name_and_reports(client, settings):
    reply = _upload(client, _jsonl(GOOD, {**GOOD, "chosen": "four"}), "my pairs.jsonl")
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["original_name"] == "my pairs.jsonl"
    assert body["name"].endswith(".jsonl") and len(body["name"]) == 32 + len(".jsonl")
    assert body["path"] == str(settings.data_dir / "datasets" / body["name"])
    assert body["report"] == {
        "detected_format": "standard",
        "rows": 2,
        "valid": 2,
        "invalid": 0,
        "problems": [],
        "problems_total": 0,
    }
    assert [d["name"] for d in client.get("/api/datasets").json()] == [body["name"]]
    two = {"max_steps": 5, "batch_size": 2, "micro_batch_size": 2}  # two rows fill a micro-batch of 2
    run = client.post(
        "/api/runs", json={**TINY, "optim": two, "data": {"source": "file", "path": body["path"]}}
    )
    assert run.status_code == 201  # an uploaded dataset is usable as data.path


def test_every_malformed_row_kind_is_reported_with_its_line(client):
    content = _jsonl(
        GOOD,  # 1
        b"{not json",  # 2
        [1, 2],  # 3: not an object
        {"prompt": "p", "chosen": "a"},  # 4: rejected missing
        {"prompt": "p", "chosen": 5, "rejected": "b"},  # 5: chosen not a string
        {"prompt": " ", "chosen": "a", "rejected": "b"},  # 6: empty prompt
        {"prompt": "p", "chosen": "same", "rejected": "same"},  # 7: identical responses
        {"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: b"},  # 8: HH row
    )
    body = _upload(client, content).json()
    problems = [(p["line"], p["field"]) for p in body["report"]["problems"]]
    assert problems == [
        (2, "json"),
        (3, "row"),
        (4, "rejected"),
        (5, "chosen"),
        (6, "prompt"),
        (7, "rejected"),
        (8, "format"),
    ]
    assert (body["report"]["rows"], body["report"]["valid"], body["report"]["invalid"]) == (8, 1, 7)
    preview = client.get(f"/api/datasets/{body['name']}/preview").json()
    assert [row["line"] for row in preview["rows"]] == [1]
    assert preview["rows"][0]["prompt"] == "2+2?"
    assert [p["line"] for p in preview["report"]["problems"]] == [2, 3, 4, 5, 6, 7, 8]


def test_a_file_without_valid_rows_is_refused_and_removed(client, settings):
    reply = _upload(client, _jsonl({"prompt": "p"}, b"oops"))
    assert reply.status_code == 422
    message = reply.json()["detail"][0]["msg"]
    assert "pairs.jsonl:1: chosen" in message and "pairs.jsonl:2: json" in message
    assert str(settings.data_dir) not in message  # the server path is not revealed
    assert _stored(settings) == []


def test_oversize_upload_is_413_and_leaves_nothing(client, settings):
    big = _jsonl(*([GOOD] * 2000))  # ≈ 100 KB > 64 KiB
    assert len(big) > 64 * 1024
    reply = _upload(client, big)
    assert reply.status_code == 413
    assert _stored(settings) == []


def test_oversize_content_length_is_refused_before_reading(client, settings):
    reply = client.post(
        "/api/datasets",
        content=b"--x\r\n",
        headers={"content-type": "multipart/form-data; boundary=x", "content-length": str(2 * 1024**3)},
    )
    assert reply.status_code == 413
    assert _stored(settings) == []


def test_long_line_without_newline_is_refused_with_its_number(client, settings):
    content = _jsonl(GOOD, GOOD) + b'{"prompt": "' + b"x" * 5000  # line 3, no newline, over 1 KiB
    reply = _upload(client, content)
    assert reply.status_code == 413
    assert reply.json()["detail"] == "line 3 is longer than 1024 bytes"
    assert _stored(settings) == []


def test_gzip_lines_are_checked_after_decompression(client, settings):
    bomb = gzip.compress(b"{" + b" " * 200_000 + b"}\n")  # 200 KB of one line compresses to ~250 B
    assert _upload(client, bomb, "x.jsonl.gz").status_code == 413
    ok = _upload(client, gzip.compress(_jsonl(GOOD)), "x.jsonl.gz")
    assert ok.status_code == 201 and ok.json()["name"].endswith(".jsonl.gz")
    assert _upload(client, b"not gzip", "y.json.gz").status_code == 422
    assert len(_stored(settings)) == 2  # the good file and its sidecar


def test_bad_filenames_are_only_metadata(client, settings):
    for raw, expected in [
        ("../../etc/evil.jsonl", "evil.jsonl"),
        ("..\\..\\win.jsonl", "win.jsonl"),
        ("a" * 300 + ".jsonl", None),
    ]:
        reply = _upload(
            client, _jsonl(GOOD, {**GOOD, "prompt": raw}), raw
        )  # distinct bytes: not deduplicated
        assert reply.status_code == 201, (raw, reply.text)
        body = reply.json()
        assert len(body["original_name"]) <= 200
        assert body["original_name"] == expected or (
            expected is None and body["original_name"].endswith(".jsonl")
        )
        assert (settings.data_dir / "datasets" / body["name"]).is_file()
    raw_nul = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="nul\x00\x07byte.jsonl"\r\n\r\n'
        + _jsonl(GOOD)
        + b"\r\n--b--\r\n"
    )  # httpx would percent-encode the NUL, so the body is written by hand
    nul = client.post(
        "/api/datasets", content=raw_nul, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert nul.json()["original_name"] == "nulbyte.jsonl"
    assert not (settings.data_dir / "etc").exists()
    assert _upload(client, b"x", "evil.sh").status_code == 422
    assert _upload(client, b"x", "").status_code == 422


def test_parquet_and_json_uploads(client):
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([GOOD]), buffer)
    parquet = _upload(client, buffer.getvalue(), "p.parquet")
    assert parquet.status_code == 201 and parquet.json()["report"]["valid"] == 1
    array = _upload(client, json.dumps([GOOD, GOOD]).encode(), "a.json")
    assert array.json()["report"]["rows"] == 2


def test_upload_needs_multipart_and_a_file_field(client):
    assert client.post("/api/datasets", content=b"raw").status_code == 422
    no_file = client.post("/api/datasets", data={"other": "x"}, files={"nope": ("a.jsonl", b"{}")})
    assert no_file.status_code == 422
    assert no_file.json()["detail"][0]["field"] == "file"


def test_preview_of_unknown_or_crafted_names_is_404(client):
    for name in ("nope.jsonl", "..%2F..%2Fetc%2Fpasswd", "0" * 32 + ".jsonl"):
        assert client.get(f"/api/datasets/{name}/preview").status_code == 404


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_an_empty_upload_says_the_file_is_empty_and_what_a_row_looks_like(client, settings, content):
    reply = _upload(client, content)
    assert reply.status_code == 422
    message = reply.json()["detail"][0]["msg"]
    assert "among 0" not in message
    assert "holds no rows" in message and '"chosen"' in message and '"rejected"' in message
    assert _stored(settings) == []
