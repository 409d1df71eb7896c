"""The uploaded datasets under ``<data_dir>/datasets/``: each ``<uuid><ext>`` file has a sidecar
``<uuid><ext>.meta.json`` (original name, size, sha256, upload time, validation report). Names other
than generated ones are never opened, so a dataset name in a URL cannot reach another file.

A received upload (``partial-<uuid><ext>``) is validated in two streamed passes within the
``ReadBudget`` (contracts.pair_readers), its sidecar written, and only then renamed to its name: a
dataset is listed only when its file AND its sidecar exist, so nothing a refused or interrupted upload
leaves is ever listed or previewed. The same bytes uploaded again give the stored dataset back."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from backend.api.errors import Invalid, NotFound, TooLarge
from backend.api.models import DatasetOut, PreviewOut, ProblemOut, ReportOut
from backend.api.uploads import EXTENSIONS, Upload
from contracts.pair_readers import BudgetExceeded, ReadBudget
from contracts.pairs import DatasetError, PreferenceRow, ValidationReport, scan_file

SHOWN_PROBLEMS = 100
PARTIAL = "partial-"
NAME = re.compile(r"^[0-9a-f]{32}(" + "|".join(re.escape(ext) for ext in EXTENSIONS) + r")$")
META = ".meta.json"


def report_out(report: ValidationReport) -> ReportOut:
    """The report with its first 100 problems."""
    problems = [ProblemOut(line=p.line, field=p.field, message=p.message) for p in report.problems]
    return ReportOut(
        detected_format=report.detected_format,
        rows=report.rows,
        valid=report.valid,
        invalid=report.invalid,
        problems=problems[:SHOWN_PROBLEMS],
        problems_total=report.problem_count,
    )


def register(upload: Upload, budget: ReadBudget) -> DatasetOut:
    """Validate a received upload within ``budget`` and store it under its name (module docstring);
    a file already stored with the same bytes is returned instead (``reused``). A file without one
    valid row is refused (422 with the first problems and their line numbers), one past the budget
    is a 413; the partial file is removed in every case."""
    try:
        if (stored := same_content(upload.path.parent, upload.sha256)) is not None:
            return stored.model_copy(update={"reused": True})
        source = upload.original_name
        _, report = scan_file(upload.partial, budget, keep_problems=SHOWN_PROBLEMS, source=source)
        dataset = DatasetOut(
            name=upload.name,
            original_name=upload.original_name,
            path=str(upload.path),
            size_bytes=upload.size_bytes,
            uploaded_at=time.time(),
            report=report_out(report),
            sha256=upload.sha256,
        )
        meta = upload.path.with_name(upload.name + META)
        written = meta.with_name(f"{PARTIAL}{meta.name}")
        written.write_text(dataset.model_dump_json(exclude={"name", "path", "reused"}), encoding="utf-8")
        written.rename(meta)
        upload.partial.rename(upload.path)
        return dataset
    except BudgetExceeded as exc:
        raise TooLarge(_named(exc, upload)) from exc
    except DatasetError as exc:
        raise Invalid(("body", "file"), _named(exc, upload)) from exc
    finally:
        upload.partial.unlink(missing_ok=True)


def _named(exc: Exception, upload: Upload) -> str:
    """The message with the server's file path replaced by the name the user uploaded."""
    return str(exc).replace(str(upload.partial), upload.original_name)


def same_content(folder: Path, sha256: str) -> DatasetOut | None:
    """The stored dataset whose bytes hash to ``sha256``, if any."""
    for dataset in listing(folder):
        if dataset.sha256 == sha256:
            return dataset
    return None


def listing(folder: Path) -> list[DatasetOut]:
    """Every accepted dataset in ``folder`` (its file and its sidecar both present), newest first."""
    paths = [path for path in folder.glob("*") if NAME.match(path.name)] if folder.is_dir() else []
    found = [dataset for path in paths if (dataset := describe(path)) is not None]
    return sorted(found, key=lambda d: d.uploaded_at, reverse=True)


def locate(folder: Path, name: str) -> Path:
    """The file of accepted dataset ``name``, or NotFound."""
    path = folder / name
    if not NAME.match(name) or not path.is_file() or describe(path) is None:
        raise NotFound(f"dataset '{name[:80]}' not found")
    return path


def describe(path: Path) -> DatasetOut | None:
    """A dataset from its sidecar; None when there is no readable sidecar (not an accepted upload)."""
    meta = path.with_name(path.name + META)
    try:
        values = json.loads(meta.read_text(encoding="utf-8"))
        return DatasetOut.model_validate({"report": None, **values, "name": path.name, "path": str(path)})
    except (OSError, ValueError):
        return None


def preview(folder: Path, name: str, limit: int, budget: ReadBudget, scan_rows: int) -> PreviewOut:
    """The first ``limit`` valid rows and the report over the first ``scan_rows`` records."""
    path = locate(folder, name)
    try:
        rows, report = scan_file(path, budget, limit, SHOWN_PROBLEMS, name, max_records=scan_rows)
    except DatasetError as exc:
        raise Invalid(("path", "name"), str(exc).replace(str(path), name)) from exc
    return PreviewOut(name=name, rows=[_row(row) for row in rows[:limit]], report=report_out(report))


def _row(row: PreferenceRow) -> dict[str, object]:
    texts = {"prompt": row.prompt, "chosen": row.chosen, "rejected": row.rejected}
    return {"line": row.line, "format": row.format, **texts}
