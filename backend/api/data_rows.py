"""Whether a run's data file can fill one micro-batch, checked when the run is submitted (issue 19.5):
a file with fewer valid training rows than ``optim.micro_batch_size`` would be accepted, queued and
fail seconds later in the trainer ("cannot draw a micro-batch …"); it is refused at submit instead,
with the count of valid rows and the fix.

The count comes from an upload's sidecar report (every row was validated when it was uploaded), or
from streaming the first ``scan_rows`` records of any other file under the dataset roots. Rows are
counted as the trainer would take them: at most ``data.max_rows`` records, less the held-out share of
``data.eval_fraction`` (unless ``data.eval_path`` is given). Tokenization may still drop rows that
are too long; that is reported by the run, not guessed here.
"""

from __future__ import annotations

from pathlib import Path

from backend.api import catalog
from backend.api.errors import Invalid
from contracts.config import RunConfig
from contracts.pair_readers import ReadBudget
from contracts.pairs import DatasetError, scan_file

LOC = ("body", "data", "path")


def check_enough_rows(config: RunConfig, budget: ReadBudget, scan_rows: int) -> None:
    """Invalid naming data.path when the training rows of ``config`` cannot fill one micro-batch."""
    data = config.data
    if data.source != "file" or not data.path:
        return
    path = Path(data.path)
    valid, read, complete = _valid_rows(path, budget, scan_rows)
    if data.max_rows is not None:
        valid = min(valid, data.max_rows)
    held_out = 0
    if data.eval_fraction > 0 and not data.eval_path and valid >= 2:
        held_out = min(max(1, round(data.eval_fraction * valid)), valid - 1)
    train, need = valid - held_out, config.optim.micro_batch_size
    if train >= need:
        return
    among = f"of {read} rows" if complete else f"among the first {read} rows"
    split = f", {held_out} held out by data.eval_fraction" if held_out else ""
    message = (
        f"{valid} valid rows {among}{split}: {train} for training cannot fill one micro-batch of "
        f"{need} pairs (optim.micro_batch_size) — lower optim.micro_batch_size or fix the rows "
        "(see the dataset's report)"
    )
    raise Invalid(LOC, message, "too_few_rows")


def _valid_rows(path: Path, budget: ReadBudget, scan_rows: int) -> tuple[int, int, bool]:
    """(valid rows, rows read, whether that was the whole file)."""
    stored = catalog.describe(path) if catalog.NAME.match(path.name) else None
    if stored is not None and stored.report is not None:
        return stored.report.valid, stored.report.rows, True
    try:
        _, report = scan_file(path, budget, source=path.name, max_records=scan_rows)
    except DatasetError as exc:
        raise Invalid(LOC, str(exc).replace(str(path), path.name), "dataset") from exc
    return report.valid, report.rows, report.rows < scan_rows
