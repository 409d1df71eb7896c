"""``alignscope sync SPOOL_DIR``: deliver spools that runs left behind (a node that could not reach
the server, a server that was down when the run ended). Each spool replays in seq order through the
same idempotent ingest API, so a spool synced twice, or partly delivered before, adds nothing twice.
A spool that is fully delivered is deleted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alignscope.sender import Sender
from alignscope.spool import SUFFIX, Spool, spools
from alignscope.transport import HttpTransport


@dataclass(frozen=True)
class Synced:
    """One spool's outcome: messages delivered and left (left > 0: the server went away again)."""

    run_id: str
    delivered: int
    left: int


def sync(folder: str | Path, url: str, token: str | None = None, timeout_s: float = 120.0) -> list[Synced]:
    """Deliver every spool under ``folder`` to ``url``."""
    outcomes = []
    for path in spools(folder):
        run_id = path.name.removesuffix(SUFFIX)
        spool = Spool(path.parent, run_id)
        sender = Sender(run_id, HttpTransport(url, token), spool, heartbeat_s=1e9, max_retry_s=2.0)
        sender.close(timeout_s)
        outcomes.append(Synced(run_id, sender.delivered, len(spool)))
    return outcomes
