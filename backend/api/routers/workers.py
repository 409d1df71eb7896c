"""Workers: what each worker process offers and holds, as it last reported it (the Workers page)."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import ReadConn
from backend.api.worker_models import WorkerOut
from backend.storage import workers

router = APIRouter(prefix="/api", tags=["workers"])


@router.get("/workers")
def list_workers(conn: ReadConn) -> list[WorkerOut]:
    """Every known worker, live ones first; ``live`` is false once it stopped or went silent."""
    return [WorkerOut.of(row) for row in workers.list_workers(conn)]
