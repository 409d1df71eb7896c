"""Reading the records of a preference-data file, streamed and within a budget.

Each reader yields ``(line, record)`` with the 1-based line (the physical line of a .jsonl file, the
element of a .json array, the row of a .parquet file or a ``datasets`` folder) and the record as
parsed, or a ``RowProblem`` in its place when that one record cannot be parsed (invalid JSON, nesting
deeper than Python's parser allows, an integer past its 4300-digit limit). A file that cannot be
read at all raises ``DatasetError``; so does one past the ``ReadBudget`` (too many rows, a value too
long, too many bytes once decompressed), with the place and the cap named.

Memory: .jsonl (plain or .gz) is read line by line and .parquet in batches of BATCH_ROWS rows, so
what a reader holds is one line or one batch (a batch's decoded bytes count against the budget:
dictionary-encoded strings repeated across rows inflate there, not in the file); a .json array is
parsed whole, so its size is capped by ``max_json_bytes``. A parquet file whose metadata announces
more than MAX_PARQUET_RATIO times its own size is refused before any page is read. Stdlib only;
pyarrow and ``datasets`` are imported by the readers that need them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from contracts.user_errors import UserError

BATCH_ROWS = 32
MAX_PARQUET_RATIO = 100
MIB = 1024 * 1024


class DatasetError(UserError):
    """A dataset that cannot be used at all: unreadable, unsupported, or without one valid row."""


class BudgetExceeded(DatasetError):
    """A file past its ReadBudget (too many rows, a record too long, too many bytes)."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one row was rejected. message ends with how to fix it."""

    source: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.field}: {self.message}"


@dataclass(frozen=True)
class ReadBudget:
    """Caps of one read: rows, bytes of one record (a JSONL line, a parquet row), bytes read once
    decompressed, and the size of a .json array (parsed whole). None: no cap."""

    max_rows: int | None = None
    max_record_bytes: int | None = None
    max_total_bytes: int | None = None
    max_json_bytes: int | None = None


UNLIMITED = ReadBudget()


def records(path: Path, budget: ReadBudget = UNLIMITED) -> Iterator[tuple[int, Any]]:
    """(1-based line, record or RowProblem) for every record of a supported file."""
    if path.is_dir():
        return _dataset_folder(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return _parquet(path, budget)
    if name.endswith((".jsonl", ".ndjson")):
        return _json_lines(path, budget)
    if name.endswith(".json"):
        return _json_file(path, budget)
    raise DatasetError(
        f"{path}: unsupported file type — use .jsonl, .json, their .gz, .parquet or a save_to_disk folder"
    )


def _open_text(path: Path) -> IO[str]:
    """The file as UTF-8 text (decompressed when .gz); the caller's ``with`` closes it."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return path.open(encoding="utf-8", newline="\n")


def _unreadable(path: Path, error: Exception) -> DatasetError:
    hint = "is it UTF-8 text (gzip-compressed if .gz)?"
    return DatasetError(f"{path}: cannot read ({type(error).__name__}: {error}) — {hint}")


def parse_record(text: str, source: str, line: int) -> Any:
    """One JSON record, or a RowProblem saying why it cannot be parsed."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        message = f"invalid JSON ({error.msg} at column {error.colno}) — write one JSON object per line"
        return RowProblem(source, line, "json", message)
    except RecursionError:
        return RowProblem(source, line, "json", "nested too deeply — flatten the record")
    except ValueError as error:  # an integer past Python's digit limit
        return RowProblem(source, line, "json", f"unreadable value ({error}) — write it as a string")


class _Counter:
    """Counts rows and bytes against a budget; DatasetError naming the place when one is passed."""

    def __init__(self, source: str, budget: ReadBudget) -> None:
        self.source, self.budget = source, budget
        self.rows = self.bytes = 0

    def add(self, line: int, size: int) -> None:
        cap = self.budget
        self.rows += 1
        self.bytes += size
        if cap.max_record_bytes is not None and size > cap.max_record_bytes:
            raise BudgetExceeded(
                f"{self.source}:{line}: a record of {size} bytes (at most {cap.max_record_bytes})"
            )
        if cap.max_rows is not None and self.rows > cap.max_rows:
            raise BudgetExceeded(f"{self.source}: more than {cap.max_rows} rows — split the file")
        if cap.max_total_bytes is not None and self.bytes > cap.max_total_bytes:
            raise BudgetExceeded(
                f"{self.source}: more than {cap.max_total_bytes} bytes of records — split the file"
            )


def _json_lines(path: Path, budget: ReadBudget) -> Iterator[tuple[int, Any]]:
    source, counter = str(path), _Counter(str(path), budget)
    limit = None if budget.max_record_bytes is None else budget.max_record_bytes + 2
    try:
        with _open_text(path) as handle:
            number = 0
            while line := handle.readline(limit) if limit else handle.readline():
                number += 1
                if limit and len(line) >= limit and not line.endswith("\n"):
                    cap = budget.max_record_bytes
                    raise BudgetExceeded(
                        f"{source}:{number}: a record longer than {cap} bytes (at most {cap})"
                    )
                if not line.strip():
                    continue
                counter.add(number, len(line.encode()))
                yield number, parse_record(line, source, number)
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise _unreadable(path, error) from error


def _json_file(path: Path, budget: ReadBudget) -> Iterator[tuple[int, Any]]:
    """A JSON array of objects; a .json file holding JSON lines (as ``datasets`` accepts) also works."""
    cap = budget.max_json_bytes
    try:
        with _open_text(path) as handle:
            text = handle.read(cap + 1) if cap is not None else handle.read()
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise _unreadable(path, error) from error
    if cap is not None and len(text) > cap:
        raise BudgetExceeded(f"{path}: a .json array is read whole, so at most {cap // MIB} MiB — use .jsonl")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        if text.lstrip().startswith("{"):
            return _json_lines(path, budget)
        raise DatasetError(f"{path}:{error.lineno}: invalid JSON ({error.msg}) — fix the file") from None
    except (RecursionError, ValueError) as error:
        kind = "nested too deeply" if isinstance(error, RecursionError) else "an integer too long"
        raise DatasetError(f"{path}: unreadable JSON ({kind}) — fix the file") from None
    if not isinstance(data, list):
        raise DatasetError(f"{path}: a .json dataset must be an array of objects — wrap the rows in [ ]")
    counter = _Counter(str(path), ReadBudget(max_rows=budget.max_rows))
    for line, _ in enumerate(data, start=1):
        counter.add(line, 0)
    return iter(enumerate(data, start=1))


def _parquet(path: Path, budget: ReadBudget) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    counter = _Counter(str(path), budget)
    try:
        table = pq.ParquetFile(path)
        _check_parquet_sizes(path, table.metadata, budget)
        line = 0
        for batch in table.iter_batches(batch_size=BATCH_ROWS):
            size = batch.nbytes
            per_row = size // max(batch.num_rows, 1)
            for record in batch.to_pylist():
                line += 1
                counter.add(line, per_row)
                yield line, record
    except DatasetError:
        raise
    except (OSError, ValueError, pa.ArrowException) as error:
        raise DatasetError(f"{path}: cannot read parquet ({type(error).__name__}: {error})") from error


def _check_parquet_sizes(path: Path, metadata: Any, budget: ReadBudget) -> None:
    """Refuse a file whose metadata already says it is past the budget, or that inflates more than
    MAX_PARQUET_RATIO times (a decompression bomb), before any page is read."""
    if budget.max_rows is not None and metadata.num_rows > budget.max_rows:
        raise BudgetExceeded(f"{path}: {metadata.num_rows} rows (at most {budget.max_rows}) — split the file")
    if budget.max_total_bytes is None:
        return
    total = sum(
        metadata.row_group(g).column(c).total_uncompressed_size
        for g in range(metadata.num_row_groups)
        for c in range(metadata.num_columns)
    )
    if total > min(budget.max_total_bytes, MAX_PARQUET_RATIO * path.stat().st_size + MIB):
        raise BudgetExceeded(
            f"{path}: {total} bytes uncompressed from {path.stat().st_size} (at most "
            f"{budget.max_total_bytes} bytes, or {MAX_PARQUET_RATIO}× the file) — split it"
        )


def _dataset_folder(path: Path) -> Iterator[tuple[int, Any]]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as error:
        raise DatasetError(f"{path}: not a datasets save_to_disk folder ({error})") from error
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            splits = ", ".join(loaded)
            raise DatasetError(f"{path}: no 'train' split (has {splits}) — point to {path}/<split>")
        loaded = loaded["train"]
    return iter(enumerate(loaded, start=1))
