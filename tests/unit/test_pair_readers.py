"""contracts.pair_readers: streamed reading within a budget (issue 16.3/16.6). The trainer reads the
same files with no budget; a record that cannot be parsed is a row problem on both sides."""

from __future__ import annotations

import gzip
import json

import pytest

from contracts.pair_readers import BudgetExceeded, ReadBudget, RowProblem, records
from contracts.pairs import read_rows, scan_file

GOOD = {"prompt": "p", "chosen": "a", "rejected": "b"}


def test_unparseable_lines_are_problems_for_the_trainer_too(tmp_path):
    path = tmp_path / "rows.jsonl.gz"
    lines = [
        json.dumps(GOOD),
        "[" * 100_000,
        '{"n": ' + "9" * 5000 + "}",
        json.dumps({**GOOD, "prompt": "q"}),
    ]
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    rows, report = read_rows(path)  # what the engine calls, no budget
    assert [row.line for row in rows] == [1, 4]
    assert [(p.line, p.field) for p in report.problems] == [(2, "json"), (3, "json")]
    assert "nested too deeply" in report.problems[0].message
    assert "unreadable value" in report.problems[1].message


def test_scan_keeps_only_what_it_is_asked_to(tmp_path):
    path = tmp_path / "rows.jsonl"
    bad = {"prompt": "p"}
    path.write_text("".join(json.dumps(row) + "\n" for row in [GOOD, bad] * 50))
    rows, report = scan_file(path, ReadBudget(), keep_rows=3, keep_problems=4)
    assert (report.rows, report.valid, report.invalid) == (100, 50, 50)
    assert len(rows) == 3 and len(report.problems) == 4 and report.problem_count == 100  # 2 per bad row
    _, first = scan_file(path, ReadBudget(), max_records=10)
    assert (first.rows, first.valid) == (10, 5)


@pytest.mark.parametrize(
    ("budget", "fragment"),
    [
        (ReadBudget(max_rows=3), "more than 3 rows"),
        (ReadBudget(max_record_bytes=20), ":1: a record longer than 20 bytes"),
        (ReadBudget(max_total_bytes=100), "more than 100 bytes"),
    ],
)
def test_a_budget_stops_the_read_naming_the_cap(tmp_path, budget, fragment):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({**GOOD, "prompt": f"p{i}"}) + "\n" for i in range(10)))
    with pytest.raises(BudgetExceeded, match=fragment):
        list(records(path, budget))


def test_a_line_longer_than_the_cap_is_refused_without_reading_it_whole(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + "x" * 1_000_000 + "\n")
    found = records(path, ReadBudget(max_record_bytes=1000))
    assert not isinstance(next(found)[1], RowProblem)
    with pytest.raises(BudgetExceeded, match=":2: a record longer than 1000 bytes"):
        next(found)
