"""The local spool: messages the server has not acknowledged, one JSON line each, in
``SPOOL_DIR/<run_id>.jsonl``. Written when the server is unreachable (and by ``Run.finish`` for what
could not be delivered before its deadline); read back in ``seq`` order, so a spool replays in the
order the trainer logged, whatever order its lines were appended in. ``alignscope sync SPOOL_DIR``
delivers the spools a run left behind. Thread-safe: the trainer's thread appends when the sender's
queue is full, the sender thread appends, reads and rewrites.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from alignscope.messages import Message, wire

SUFFIX = ".jsonl"


class Spool:
    """The spool file of run ``run_id`` under ``folder`` (created on the first append)."""

    def __init__(self, folder: str | Path, run_id: str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / f"{run_id}{SUFFIX}"
        self.lock = threading.RLock()
        self._count = len(self.read()) if self.path.exists() else 0

    def __len__(self) -> int:
        return self._count

    def append(self, messages: list[Message]) -> None:
        """Append ``messages`` (flushed to the OS before returning)."""
        if not messages:
            return
        lines = "".join(json.dumps(wire(m), separators=(",", ":")) + "\n" for m in messages)
        with self.lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(lines)
            self._count += len(messages)

    def read(self) -> list[Message]:
        """The spooled messages in seq order (a torn last line, from a killed writer, is skipped)."""
        with self.lock:
            if not self.path.exists():
                return []
            text = self.path.read_text(encoding="utf-8")
        messages = []
        for line in text.splitlines():
            try:
                messages.append(json.loads(line))
            except ValueError:
                continue
        return sorted(messages, key=lambda m: m["seq"])

    def remove(self, seqs: set[int]) -> None:
        """Drop the messages whose seq is in ``seqs`` (delivered); deletes the file when none are left."""
        with self.lock:
            left = [m for m in self.read() if m["seq"] not in seqs]
            self._count = len(left)
            if not left:
                self.path.unlink(missing_ok=True)
                return
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text("".join(json.dumps(m) + "\n" for m in left), encoding="utf-8")
            os.replace(temporary, self.path)


def spools(folder: str | Path) -> list[Path]:
    """The spool files under ``folder``, oldest first."""
    return sorted(Path(folder).glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)
