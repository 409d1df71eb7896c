"""contracts.pairs: reading files, detecting formats, reporting bad rows with their line numbers."""

import gzip
import json
from pathlib import Path

import pytest

from contracts.pairs import DatasetError, PreferenceRow, RowProblem, pair_id, read_rows, validate_records
from worker.engine.data.bundled import FILES

HH_TEST = FILES["hh-rlhf-harmless-base-test"]  # shipped in the package (data.source: bundled)
PINNED_ID = "6d0360af3ec12755"  # sha256(json.dumps(["What is 2 + 2?", "4", "5"]))[:16], computed once

GOOD = {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"}
STANDARD_LINES = [
    json.dumps(GOOD),  # 1 valid
    "",  # 2 blank: skipped, still counted as a line
    '{"prompt": "x", ',  # 3 bad JSON
    json.dumps({"prompt": "p", "chosen": "c"}),  # 4 missing rejected
    json.dumps({"prompt": "p", "chosen": "   ", "rejected": "r"}),  # 5 empty chosen
    json.dumps({"prompt": "p", "chosen": "same", "rejected": "same"}),  # 6 chosen == rejected
    json.dumps({"prompt": 123, "chosen": "c", "rejected": "r"}),  # 7 non-string prompt
    json.dumps({"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"}),  # 8 valid
    "[1, 2]",  # 9 not an object
]
STANDARD_PROBLEMS = [(3, "json"), (4, "rejected"), (5, "chosen"), (6, "rejected"), (7, "prompt"), (9, "row")]


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def located(problems: list[RowProblem]) -> list[tuple[int, str]]:
    return [(problem.line, problem.field) for problem in problems]


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.jsonl.gz"])
def test_every_standard_problem_is_reported_at_its_line(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, "\n".join(STANDARD_LINES) + "\n")
    rows, report = read_rows(path)
    assert [row.line for row in rows] == [1, 8]
    assert located(report.problems) == STANDARD_PROBLEMS
    # 9 lines, one blank: 8 records, 2 valid, 6 invalid
    assert (report.rows, report.valid, report.invalid, report.detected_format) == (8, 2, 6, "standard")
    assert all(" — " in problem.message for problem in report.problems)
    assert str(report.problems[0]).startswith(f"{path}:3: json: invalid JSON")
    assert rows[0] == PreferenceRow("What is 2 + 2?", "4", "5", line=1, source=str(path), format="standard")


def conversation(
    prompt_role: str = "user", answer_role: str = "assistant", content: object = "Hello"
) -> dict:
    return {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": prompt_role, "content": "Hi"}],
        "chosen": [{"role": answer_role, "content": content}],
        "rejected": [{"role": "assistant", "content": "Go away"}],
    }


@pytest.mark.parametrize("name", ["chat.jsonl", "chat.jsonl.gz"])
def test_conversational_problems_are_reported_at_their_line(tmp_path: Path, name: str) -> None:
    records = [
        conversation(),  # 1 valid
        conversation(answer_role="user"),  # 2 chosen holds a user message
        conversation(content=["Hello"]),  # 3 non-string content
        conversation(prompt_role="assistant"),  # 4 prompt ends with an assistant turn
        conversation(prompt_role="robot"),  # 5 unknown role
        {**conversation(), "rejected": []},  # 6 empty list
    ]
    path = write(tmp_path / name, "\n".join(json.dumps(record) for record in records))
    rows, report = read_rows(path)
    assert [row.line for row in rows] == [1]
    assert rows[0].format == report.detected_format == "conversational"
    assert rows[0].chosen == [{"role": "assistant", "content": "Hello"}]
    assert located(report.problems) == [
        (2, "chosen[0].role"),
        (3, "chosen[0].content"),
        (4, "prompt"),
        (5, "prompt[1].role"),
        (6, "rejected"),
    ]


def hh(history: str, answer: str) -> str:
    return f"\n\nHuman: {history}\n\nAssistant: Sure.\n\nHuman: And then?\n\nAssistant:{answer}"


def test_hh_split_at_the_last_assistant_turn(tmp_path: Path) -> None:
    records = [
        {"chosen": hh("Hi", " Then rest."), "rejected": hh("Hi", " Then run.")},  # 1 valid
        {"chosen": hh("Hi", " Then rest."), "rejected": hh("Hello", " Then run.")},  # 2 histories differ
        {"chosen": hh("Hi", " "), "rejected": hh("Hi", " Then run.")},  # 3 empty last turn
        {"chosen": "\n\nHuman: Hi", "rejected": hh("Hi", " x")},  # 4 no assistant turn
    ]
    path = write(tmp_path / "hh.jsonl", "\n".join(json.dumps(record) for record in records))
    rows, report = read_rows(path)
    assert report.detected_format == "hh"
    assert located(report.problems) == [(2, "rejected"), (3, "chosen"), (4, "chosen")]
    (row,) = rows
    assert row.prompt == "\n\nHuman: Hi\n\nAssistant: Sure.\n\nHuman: And then?\n\nAssistant:"
    assert (row.chosen, row.rejected, row.format) == (" Then rest.", " Then run.", "hh")


def test_real_hh_test_file_parses() -> None:
    rows, report = read_rows(HH_TEST)
    # 2,312 rows: 4 with an empty last chosen turn (87, 517, 926, 1104), 5 whose histories differ
    assert (report.rows, report.valid, report.detected_format) == (2312, 2303, "hh")
    bad_lines = [87, 517, 926, 1104, 1255, 1689, 1951, 1953, 2037]
    assert sorted({problem.line for problem in report.problems}) == bad_lines
    with gzip.open(HH_TEST, "rt", encoding="utf-8") as handle:
        originals = [json.loads(line) for line in handle]
    for row in rows:
        assert row.prompt.endswith("\n\nAssistant:")
        assert row.prompt + row.chosen == originals[row.line - 1]["chosen"]
        assert row.prompt + row.rejected == originals[row.line - 1]["rejected"]


THREE = [
    {"prompt": "a", "chosen": "b", "rejected": "c"},
    {"prompt": "d", "chosen": "e", "rejected": "f"},
    {"prompt": "g", "chosen": "h", "rejected": "i"},
]
THREE_IDS = [pair_id(r["prompt"], r["chosen"], r["rejected"]) for r in THREE]


@pytest.mark.parametrize("name", ["rows.json", "rows.json.gz"])
def test_json_array(tmp_path: Path, name: str) -> None:
    rows, _ = read_rows(write(tmp_path / name, json.dumps(THREE, indent=2)))
    assert [row.pair_id for row in rows] == THREE_IDS
    assert [row.line for row in rows] == [1, 2, 3]  # element numbers


def test_json_file_holding_json_lines(tmp_path: Path) -> None:
    rows, _ = read_rows(write(tmp_path / "rows.json", "\n".join(json.dumps(r) for r in THREE)))
    assert [row.pair_id for row in rows] == THREE_IDS


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(THREE), tmp_path / "rows.parquet", row_group_size=2)
    rows, _ = read_rows(tmp_path / "rows.parquet")
    assert [row.pair_id for row in rows] == THREE_IDS
    assert [row.line for row in rows] == [1, 2, 3]  # across two row groups


def test_datasets_folder_and_dataset_dict(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_list(THREE).save_to_disk(str(tmp_path / "flat"))
    rows, _ = read_rows(tmp_path / "flat")
    assert [row.pair_id for row in rows] == THREE_IDS
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(THREE[:2])})
    splits.save_to_disk(str(tmp_path / "splits"))
    rows, _ = read_rows(tmp_path / "splits")
    assert [row.pair_id for row in rows] == THREE_IDS[:2]


def test_max_rows_reads_only_the_first_records(tmp_path: Path) -> None:
    rows, report = read_rows(
        write(tmp_path / "rows.jsonl", "\n".join(json.dumps(r) for r in THREE)), max_rows=2
    )
    assert (report.rows, [row.line for row in rows]) == (2, [1, 2])


def test_unusable_files_raise_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        read_rows(tmp_path / "missing.jsonl")
    with pytest.raises(DatasetError, match="unsupported file type"):
        read_rows(write(tmp_path / "rows.csv", "prompt,chosen,rejected\n"))
    with pytest.raises(DatasetError, match="array of objects"):
        read_rows(write(tmp_path / "obj.json", '{"rows": []}'))
    (tmp_path / "fake.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match="cannot read"):
        read_rows(tmp_path / "fake.jsonl.gz")


def test_no_valid_row_lists_the_first_problems(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", '{"prompt": "p", "chosen": "c"}\n{oops\n')
    with pytest.raises(DatasetError) as caught:
        read_rows(path)
    message = str(caught.value)
    assert "no valid rows among 2" in message
    assert f"{path}:1: rejected: missing — add a 'rejected' string" in message
    assert f"{path}:2: json: invalid JSON" in message


def test_format_is_one_per_file(tmp_path: Path) -> None:
    records = [THREE[0], THREE[1], {"chosen": hh("Hi", " a"), "rejected": hh("Hi", " b")}]
    _, report = read_rows(write(tmp_path / "mixed.jsonl", "\n".join(json.dumps(r) for r in records)))
    # majority standard (2 of 3): the HH-looking row is reported, not silently reinterpreted
    assert report.detected_format == "standard"
    assert located(report.problems) == [(3, "format")]
    with pytest.raises(DatasetError, match="unknown format"):
        validate_records([(1, THREE[0])], "x", fmt="csv")


def test_explicit_format_overrides_detection() -> None:
    records = [(1, {"chosen": hh("Hi", " a"), "rejected": hh("Hi", " b")})]
    rows, report = validate_records(records, "mem", fmt="hh")
    assert report.detected_format == "hh" and rows[0].chosen == " a"
    with pytest.raises(DatasetError, match="looks like hh format but the file is standard"):
        validate_records(records, "mem", fmt="standard")


def test_pair_id_is_a_stable_content_hash() -> None:
    first = pair_id("What is 2 + 2?", "4", "5")
    assert first == pair_id("What is 2 + 2?", "4", "5")
    assert len(first) == 16 and int(first, 16) >= 0
    # pinned: the id must never change between versions (stored rows refer to it)
    assert first == PINNED_ID
    assert pair_id("What is 2 + 2?", "5", "4") != first
    assert pair_id("ab", "c", "d") != pair_id("a", "bc", "d")  # field boundaries matter
    prompt, chosen = [{"role": "user", "content": "Hi"}], [{"role": "assistant", "content": "a"}]
    row = PreferenceRow(prompt, chosen, [], 1, "mem", "conversational")
    # message lists hash as canonical JSON (sorted keys), so key order in the file does not matter
    expected = pair_id('[{"content": "Hi", "role": "user"}]', '[{"content": "a", "role": "assistant"}]', "[]")
    assert row.pair_id == expected
