"""The preference samples shipped inside the package (``data.source: bundled``): each name of
``contracts.config.BundledDataset`` → its file, beside its LICENSE and a README naming the source.
Installed with the package (``pyproject.toml`` package data), so the HH presets need neither a path
nor the network."""

from __future__ import annotations

from pathlib import Path

from contracts.config import BundledDataset
from contracts.pairs import DatasetError

FILES: dict[str, Path] = {
    "hh-rlhf-harmless-base-test": Path(__file__).resolve().parent
    / "hh"
    / "hh-rlhf-harmless-base-test.jsonl.gz",
}


def bundled_path(name: BundledDataset) -> Path:
    """The file of the bundled sample ``name``; DatasetError when the install lacks it."""
    path = FILES.get(name)
    if path is None or not path.is_file():
        raise DatasetError(
            f"data.bundled: the sample '{name}' is not in this installation ({path}); reinstall AlignScope "
            "(pip install --force-reinstall alignscope) or use data.source: file with your own copy"
        )
    return path
