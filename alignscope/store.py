"""A run written straight into an AlignScope store on the same machine: ``url`` is a database URL
(``sqlite:///…/alignscope.db``, ``postgresql+psycopg://…``) instead of ``http://…``. The same
messages go through the same storage functions as the ingest API (backend.storage.ingest), in one
transaction each, with no server in between; a running ``alignscope serve`` on that store shows the
run live. The only module of the client that imports ``backend`` (docs/decisions/0040).

A database that is locked past its busy timeout or unreachable raises ``Unreachable`` (the message
is spooled and retried, as over HTTP); an invalid message or a native run's id raises ``Refused``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from alignscope.transport import Refused, Unreachable
from backend.storage import ingest
from backend.storage.db import init_db
from contracts.ingest import IngestAck, IngestBatch, RunFinish, RunOpen

PREFIX = "/api/ingest/runs/"


class StoreTransport:
    """Ingest messages applied to the store at ``database_url`` (migrated to the current schema)."""

    def __init__(self, database_url: str, timeout_s: float = 10.0) -> None:
        self.url = database_url
        self.timeout_s = timeout_s
        self.engine = init_db(database_url)

    def send(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Apply one message; the acknowledgement the ingest API would give."""
        run_id, _, action = path.removeprefix(PREFIX).partition("/")
        try:
            with self.engine.begin() as conn:
                stored = None
                if method == "PUT":
                    ingest.open_run(conn, run_id, _valid(RunOpen, body))
                elif action == "batch":
                    self._existing(conn, run_id)
                    stored = ingest.store_batch(conn, run_id, _valid(IngestBatch, body))
                else:
                    self._existing(conn, run_id)
                    ingest.finish_run(conn, run_id, _valid(RunFinish, body))
                row = self._existing(conn, run_id)
        except (OperationalError, InterfaceError) as exc:
            raise Unreachable(f"{self.url}: {exc.__class__.__name__}: {str(exc)[:500]}") from exc
        except ingest.NotExternal as exc:
            raise Refused(str(exc)) from exc
        counts = (
            {} if stored is None else {"points": stored.points, "pairs": stored.pairs, "texts": stored.texts}
        )
        ack = IngestAck(run_id=row.id, status=row.status, stop_requested=row.stop_requested, **counts)
        return ack.model_dump()

    def close(self) -> None:
        self.engine.dispose()

    @staticmethod
    def _existing(conn: Any, run_id: str) -> ingest.runs.RunRow:
        row = ingest.external_run(conn, run_id)
        if row is None:
            raise Refused(f"run '{run_id}' not found in the store; its open message was not applied")
        return row


def _valid(model: type[BaseModel], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise Refused(
            f"invalid {model.__name__}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
        ) from exc
