"""The uploaded datasets under ``<data_dir>/datasets/``: each ``<uuid><ext>`` file has a sidecar
``<uuid><ext>.meta.json`` (original name, size, upload time, validation report). Names other than
generated ones are never opened, so a dataset name in a URL cannot reach another file."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from backend.api.errors import Invalid, NotFound
from backend.api.models import DatasetOut, PreviewOut, ProblemOut, ReportOut
from backend.api.uploads import EXTENSIONS, Upload
from contracts.pairs import DatasetError, PreferenceRow, ValidationReport, read_rows

SHOWN_PROBLEMS = 100
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
        problems_total=len(problems),
    )


def register(upload: Upload) -> DatasetOut:
    """Validate every row of a received upload and write its sidecar; a file without one valid row
    is deleted and refused (422 with the first problems and their line numbers)."""
    try:
        _, report = read_rows(upload.path)
    except DatasetError as exc:
        upload.path.unlink(missing_ok=True)
        raise Invalid(("body", "file"), str(exc).replace(str(upload.path), upload.original_name)) from exc
    dataset = DatasetOut(
        name=upload.name,
        original_name=upload.original_name,
        path=str(upload.path),
        size_bytes=upload.size_bytes,
        uploaded_at=time.time(),
        report=report_out(report),
    )
    meta = upload.path.with_name(upload.name + META)
    meta.write_text(dataset.model_dump_json(exclude={"name", "path"}), encoding="utf-8")
    return dataset


def listing(folder: Path) -> list[DatasetOut]:
    """Every generated dataset in ``folder``, newest first."""
    found = [describe(path) for path in folder.glob("*") if NAME.match(path.name)] if folder.is_dir() else []
    return sorted(found, key=lambda d: d.uploaded_at, reverse=True)


def locate(folder: Path, name: str) -> Path:
    """The file of dataset ``name``, or NotFound."""
    path = folder / name
    if not NAME.match(name) or not path.is_file():
        raise NotFound(f"dataset '{name[:80]}' not found")
    return path


def describe(path: Path) -> DatasetOut:
    """A dataset from its sidecar (or from the file alone when the sidecar is missing)."""
    meta = path.with_name(path.name + META)
    try:
        values = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stat = path.stat()
        values = {"original_name": path.name, "size_bytes": stat.st_size, "uploaded_at": stat.st_mtime}
    return DatasetOut.model_validate({"report": None, **values, "name": path.name, "path": str(path)})


def preview(folder: Path, name: str, limit: int, scan_rows: int) -> PreviewOut:
    """The first ``limit`` valid rows and the report over the first ``scan_rows`` records."""
    path = locate(folder, name)
    try:
        rows, report = read_rows(path, max_rows=scan_rows)
    except DatasetError as exc:
        raise Invalid(("path", "name"), str(exc).replace(str(path), name)) from exc
    return PreviewOut(name=name, rows=[_row(row) for row in rows[:limit]], report=report_out(report))


def _row(row: PreferenceRow) -> dict[str, object]:
    texts = {"prompt": row.prompt, "chosen": row.chosen, "rejected": row.rejected}
    return {"line": row.line, "format": row.format, **texts}
