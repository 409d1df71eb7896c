"""Preference rows: reading a dataset file, detecting its format and validating every row.

Shared by the engine (training data) and the web API (dataset preview). Stdlib only; pyarrow and
``datasets`` are imported inside the functions that read .parquet files and save_to_disk folders.

Formats (``fmt``):

- ``standard`` (TRL): ``prompt``, ``chosen``, ``rejected`` are non-empty strings.
- ``conversational`` (TRL): ``prompt`` is a list of ``{"role", "content"}`` messages ending with a user
  turn; ``chosen``/``rejected`` are lists of assistant messages. The messages are kept as they are; the
  engine renders them with the tokenizer's chat template.
- ``hh`` (Anthropic HH-RLHF): only ``chosen``/``rejected``, each a whole dialogue. Both are split at
  their LAST ``"\\n\\nAssistant:"``: the prompt is the text up to and including it, the response is the
  rest (it keeps its leading space). The two prompts must be equal.
- ``auto``: each row's format is guessed from its keys and value types; the file's format is the most
  common guess (the first one seen on a tie), and every row is then validated as that format.

Line numbers are 1-based: the physical line in a .jsonl file (blank lines are skipped but counted),
the element number in a .json array, the row number in a .parquet file or a ``datasets`` folder.
A bad row never raises: it becomes one or more ``RowProblem``. ``DatasetError`` is raised only for a
file that cannot be read at all, or when no row is valid.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from contracts.pair_readers import UNLIMITED, DatasetError, ReadBudget, RowProblem, records

HH_SEPARATOR = "\n\nAssistant:"
FORMATS = ("standard", "conversational", "hh")
ROLES = ("system", "user", "assistant")
FIELDS = ("prompt", "chosen", "rejected")
SHOWN_PROBLEMS = 5

Messages = list[dict[str, str]]
Content = str | Messages
ProblemMaker = Callable[[str, str], "RowProblem"]


@dataclass(frozen=True, slots=True)
class PreferenceRow:
    """One valid preference pair. prompt/chosen/rejected are strings, or message lists for the
    conversational format. line: 1-based row number in ``source``; format: one of FORMATS."""

    prompt: Content
    chosen: Content
    rejected: Content
    line: int
    source: str
    format: str

    @property
    def pair_id(self) -> str:
        """Content hash of the row (message lists hashed as canonical JSON), independent of any
        tokenizer or chat template, so the same row has the same id in every run."""
        return pair_id(*(_canonical(value) for value in (self.prompt, self.chosen, self.rejected)))


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """rows: records read; valid: rows that passed; problems: every problem found (a row may have
    several; scan_file keeps only the first and counts all in ``problems_total``).
    detected_format: the format the rows were validated as."""

    path: str
    detected_format: str
    rows: int
    valid: int
    problems: list[RowProblem]
    problems_total: int | None = None

    @property
    def problem_count(self) -> int:
        """Every problem found (``problems`` may hold only the first of them)."""
        return len(self.problems) if self.problems_total is None else self.problems_total

    @property
    def invalid(self) -> int:
        """Number of rows with at least one problem."""
        return self.rows - self.valid


def pair_id(prompt_text: str, chosen_text: str, rejected_text: str) -> str:
    """16 hex characters of sha256 over the JSON array [prompt, chosen, rejected] (unambiguous)."""
    payload = json.dumps([prompt_text, chosen_text, rejected_text], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def read_rows(
    path: str | Path, fmt: str = "auto", max_rows: int | None = None, budget: ReadBudget = UNLIMITED
) -> tuple[list[PreferenceRow], ValidationReport]:
    """Read and validate the first ``max_rows`` records of a .jsonl/.json (optionally .gz), .parquet
    file or ``datasets`` save_to_disk folder. Returns the valid rows in file order and the report.
    Raises DatasetError for an unreadable or unsupported file, or when no row is valid."""
    source = Path(path)
    if not source.exists():
        raise DatasetError(f"{source}: no such file or folder — check data.path")
    found = records(source, budget)
    if max_rows is not None:
        found = islice(found, max_rows)
    return validate_records(found, str(source), fmt)


def scan_file(
    path: Path,
    budget: ReadBudget,
    keep_rows: int = 0,
    keep_problems: int = 100,
    source: str | None = None,
    max_records: int | None = None,
) -> tuple[list[PreferenceRow], ValidationReport]:
    """Validate the records of ``path`` (the first ``max_records``, or all) in two streamed passes
    (the format vote, then the rows), holding only the first ``keep_rows`` valid rows and
    ``keep_problems`` problems, so memory does not grow with the file. The report's ``problems`` are
    those kept; ``problems_total`` counts all. Raises DatasetError as read_rows does (``source``
    names the file in messages)."""
    name = source or str(path)
    counts: Counter[str] = Counter()
    for _, record in islice(records(path, budget), max_records):
        if (guess := _guess_format(record)) is not None:
            counts[guess] += 1  # insertion order is first-seen order: the vote's tie-break
    file_fmt = max(counts, key=lambda guess: counts[guess]) if counts else "standard"
    rows: list[PreferenceRow] = []
    problems: list[RowProblem] = []
    total = valid = problem_count = 0
    for line, record in islice(records(path, budget), max_records):
        total += 1
        if isinstance(record, RowProblem):
            found, row = [record], None
        else:
            row, found = _validate(record, line, name, file_fmt, _guess_format(record))
        problem_count += len(found)
        problems.extend(found[: max(0, keep_problems - len(problems))])
        if row is not None:
            valid += 1
            if len(rows) < keep_rows:
                rows.append(row)
    report = ValidationReport(name, file_fmt, total, valid, problems, problem_count)
    if not valid:
        raise DatasetError(_no_valid_rows(report))
    return rows, report


def validate_records(
    records: Iterable[tuple[int, Any]], source: str, fmt: str = "auto"
) -> tuple[list[PreferenceRow], ValidationReport]:
    """Validate (line, record) pairs already read (e.g. from ``datasets.load_dataset``). A record that
    is a ``RowProblem`` (from a reader) is passed through. Raises DatasetError when none is valid."""
    if fmt != "auto" and fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r} — use one of auto, {', '.join(FORMATS)}")
    items = list(records)
    guesses = [_guess_format(record) for _, record in items]
    file_fmt = fmt if fmt != "auto" else _majority(guesses)
    rows: list[PreferenceRow] = []
    problems: list[RowProblem] = []
    for (line, record), guess in zip(items, guesses, strict=True):
        if isinstance(record, RowProblem):
            problems.append(record)
            continue
        row, found = _validate(record, line, source, file_fmt, guess)
        problems.extend(found)
        if row is not None:
            rows.append(row)
    report = ValidationReport(source, file_fmt, len(items), len(rows), problems)
    if not rows:
        raise DatasetError(_no_valid_rows(report))
    return rows, report


def _no_valid_rows(report: ValidationReport) -> str:
    if report.rows == 0:
        return (
            f"{report.path}: the file holds no rows (it is empty, or only blank lines): a dataset needs one "
            'preference pair per line, e.g. {"prompt": "2+2=", "chosen": "4", "rejected": "5"} '
            "(TRL standard; TRL conversational and Anthropic HH rows are read too)"
        )
    shown = "\n".join(f"  {problem}" for problem in report.problems[:SHOWN_PROBLEMS])
    more = report.problem_count - SHOWN_PROBLEMS
    tail = f"\n  … and {more} more" if more > 0 else ""
    head = f"{report.path}: no valid rows among {report.rows} (format {report.detected_format})"
    return f"{head}\n{shown}{tail}"


# ------------------------------------------------------------------------------------------ formats


def _guess_format(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    if "prompt" in record:
        values = [record.get(key) for key in FIELDS]
        return "conversational" if any(isinstance(v, list) for v in values) else "standard"
    if "chosen" in record or "rejected" in record:
        return "hh"
    return None


def _majority(guesses: list[str | None]) -> str:
    counts = Counter(guess for guess in guesses if guess is not None)
    if not counts:
        return "standard"
    best = max(counts.values())
    return next(guess for guess in guesses if guess is not None and counts[guess] == best)


def _validate(
    record: Any, line: int, source: str, fmt: str, guess: str | None
) -> tuple[PreferenceRow | None, list[RowProblem]]:
    def problem(field: str, message: str) -> RowProblem:
        return RowProblem(source, line, field, message)

    if not isinstance(record, dict):
        kind = type(record).__name__
        return None, [problem("row", f"expected a JSON object, got {kind} — one object per row")]
    if guess is not None and guess != fmt:
        message = f"row looks like {guess} format but the file is {fmt} — use one format per file"
        return None, [problem("format", message)]
    if fmt == "hh":
        return _validate_hh(record, line, source, problem)
    check = _check_messages if fmt == "conversational" else _check_text
    found = [p for key in FIELDS for p in check(record, key, problem)]
    if not found and _canonical(record["chosen"]) == _canonical(record["rejected"]):
        found.append(problem("rejected", "identical to chosen — a pair needs two different responses"))
    if found:
        return None, found
    values = [record[key] for key in FIELDS]
    return PreferenceRow(*values, line=line, source=source, format=fmt), []


def _check_text(record: dict, key: str, problem: ProblemMaker) -> list[RowProblem]:
    if key not in record or record[key] is None:
        return [problem(key, f"missing — add a '{key}' string")]
    value = record[key]
    if not isinstance(value, str):
        return [problem(key, f"expected a string, got {type(value).__name__} — give '{key}' as text")]
    if not value.strip():
        return [problem(key, f"empty — give the {key} text")]
    return []


def _check_messages(record: dict, key: str, problem: ProblemMaker) -> list[RowProblem]:
    if key not in record or record[key] is None:
        return [problem(key, f"missing — add '{key}' as a list of messages")]
    value = record[key]
    if not isinstance(value, list) or not value:
        return [problem(key, "expected a non-empty list of {role, content} messages — fix the field")]
    found = []
    for index, message in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(message, dict):
            found.append(problem(where, "expected a {role, content} object — fix the message"))
            continue
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            found.append(problem(f"{where}.role", f"unknown role {role!r} — use one of {', '.join(ROLES)}"))
        elif key != "prompt" and role != "assistant":
            found.append(problem(f"{where}.role", f"{key} must hold assistant messages, got {role!r}"))
        if not isinstance(content, str):
            kind = type(content).__name__
            found.append(problem(f"{where}.content", f"expected a string, got {kind} — give the text"))
        elif not content.strip():
            found.append(problem(f"{where}.content", "empty — give the message text"))
    last_role = value[-1].get("role") if isinstance(value[-1], dict) else None
    if key == "prompt" and last_role != "user" and not found:
        found.append(problem(key, f"must end with a user turn, ends with {last_role!r} — fix the prompt"))
    return found


def _validate_hh(
    record: dict, line: int, source: str, problem: ProblemMaker
) -> tuple[PreferenceRow | None, list[RowProblem]]:
    found = [p for key in ("chosen", "rejected") for p in _check_text(record, key, problem)]
    if found:
        return None, found
    parts = {}
    for key in ("chosen", "rejected"):
        text = record[key]
        cut = text.rfind(HH_SEPARATOR)
        if cut < 0:
            found.append(problem(key, "no '\\n\\nAssistant:' turn — HH dialogues end with an assistant turn"))
            continue
        cut += len(HH_SEPARATOR)
        parts[key] = (text[:cut], text[cut:])
        if not text[cut:].strip():
            found.append(problem(key, "the last assistant turn is empty — remove the row or add the reply"))
    if not found and parts["chosen"][0] != parts["rejected"][0]:
        message = "the dialogue before its last assistant turn differs from chosen's — use one history"
        found.append(problem("rejected", message))
    if not found and parts["chosen"][1] == parts["rejected"][1]:
        found.append(problem("rejected", "identical to chosen — a pair needs two different responses"))
    if found:
        return None, found
    prompt, chosen = parts["chosen"]
    return PreferenceRow(prompt, chosen, parts["rejected"][1], line=line, source=source, format="hh"), []


def _canonical(value: Content) -> str:
    """The text of a field, or canonical JSON of a message list."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
