"""DbSink: the engine's MetricsSink over backend.storage, batched, idempotent and fenced.

Rows are buffered and written every ``batch_rows`` rows or ``flush_every_s`` seconds (checked when
the engine calls the sink; there is no background thread), and on ``flush()``/``close()``. Each
write is one transaction per chunk of at most ``chunk_rows`` rows of each kind, which also renews the
run's heartbeat (at most every ``heartbeat_every_s``, or at once after ``status()``).

When the database is unavailable (locked past the busy timeout, unreachable, restarting) the buffer
is kept and retried with exponential backoff, so nothing is lost; rows are removed from the buffer
only after their transaction commits, and a retry of an uncertain commit inserts nothing twice
(``ON CONFLICT DO NOTHING``). When the run was re-queued, marked failed or deleted, the write is
refused as a whole and ``StaleAttempt`` is raised to the engine; the sink then stays closed.
Not thread-safe: one sink per trainer process, used from one thread.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from backend.storage import runs
from backend.storage.db import reader
from backend.storage.evaluations import insert_evaluation, insert_judgments
from backend.storage.fencing import StaleAttempt
from backend.storage.metrics import insert_points, summarize_new_points
from backend.storage.pairs import insert_pair_records, insert_pair_texts
from contracts.events import EvalRecord, Judgment, MetricPoint, PairRecord, PairText

log = logging.getLogger(__name__)
UNAVAILABLE = (OperationalError, InterfaceError)


class DbSink:
    """MetricsSink writing run ``run_id`` at ``attempt`` through ``engine``.

    batch_rows: buffered rows that trigger a write (50,000: a fast trainer's points go in a few large
    transactions, with fewer rollup rows and commits per point; bench/ingest.py measures it);
    flush_every_s: the longest a row waits;
    heartbeat_every_s: the shortest gap between heartbeats (and stop-flag polls); chunk_rows: rows of
    each kind per transaction; retry_s: (first, longest) backoff after a failed write; clock:
    monotonic seconds (injectable for tests); summarize_rows: points written between two summaries
    of PostgreSQL's BRIN seq index (``metrics.summarize_new_points``, about one 128-page range of
    points), so that live streams do not read a long unsummarized tail.
    """

    def __init__(
        self,
        engine: Engine,
        run_id: str,
        attempt: int,
        *,
        batch_rows: int = 50_000,
        flush_every_s: float = 1.0,
        heartbeat_every_s: float = 1.0,
        chunk_rows: int = 50_000,
        retry_s: tuple[float, float] = (0.5, 30.0),
        clock: Callable[[], float] = time.monotonic,
        total_steps: int | None = None,
        summarize_rows: int = 20_000,
    ) -> None:
        self.engine = engine
        self.run_id = run_id
        self.attempt = attempt
        self.batch_rows = batch_rows
        self.flush_every_s = flush_every_s
        self.heartbeat_every_s = heartbeat_every_s
        self.chunk_rows = chunk_rows
        self.retry_s = retry_s
        self.clock = clock
        self._points: list[MetricPoint] = []
        self._records: list[PairRecord] = []
        self._texts: list[PairText] = []
        self._status: tuple[str, float | None] | None = None
        self._last_flush = self._last_beat = clock()
        self._retry_at = -math.inf
        self._backoff = retry_s[0]
        self._stale: StaleAttempt | None = None
        self._stop_checked_at = -math.inf
        self._stop = False
        self.total_steps = total_steps
        self._step: int | None = None
        self.summarize_rows = summarize_rows
        self._unsummarized = 0

    # ------------------------------------------------------------------ MetricsSink

    def points(self, points: Sequence[MetricPoint]) -> None:
        """Buffer metric points."""
        self._raise_if_stale()
        self._points.extend(points)
        if points:
            self._step = max(self._step or 0, max(p.step for p in points))
        self._maybe_flush()

    def pairs(self, records: Sequence[PairRecord]) -> None:
        """Buffer per-pair records."""
        self._raise_if_stale()
        self._records.extend(records)
        self._maybe_flush()

    def texts(self, texts: Sequence[PairText]) -> None:
        """Buffer pair texts."""
        self._raise_if_stale()
        self._texts.extend(texts)
        self._maybe_flush()

    def evaluations(self, records: Sequence[EvalRecord], judgments: Sequence[Judgment]) -> None:
        """Write win rates and their judgments now (rare, small), fenced by attempt."""
        self._raise_if_stale()
        with self.engine.begin() as conn:
            for record in records:
                insert_evaluation(conn, self.run_id, record, self.attempt)
            insert_judgments(conn, self.run_id, judgments, self.attempt)

    def status(self, message: str, progress: float | None = None) -> None:
        """Record the run's message and progress (0..1); written with the next heartbeat."""
        self._raise_if_stale()
        self._status = (message, progress)
        self._maybe_flush()

    # ------------------------------------------------------------------ control

    @property
    def pending(self) -> int:
        """Rows buffered and not yet committed."""
        return len(self._points) + len(self._records) + len(self._texts)

    def flush(self) -> None:
        """Write everything buffered now. Raises the database error when it is unavailable (the
        buffer is kept for a later flush) and ``StaleAttempt`` when fenced."""
        self._raise_if_stale()
        self._write_all()

    def checkpointed(self, path: str, step: int) -> None:
        """Record the checkpoint folder on the run row now (fenced by attempt), so that a trainer or
        host killed right after it resumes from it instead of failing or starting over."""
        self._raise_if_stale()
        with self.engine.begin() as conn:
            if not runs.set_checkpoint(conn, self.run_id, self.attempt, path):
                raise StaleAttempt(f"run {self.run_id} is no longer running at attempt {self.attempt}")

    def close(self, timeout_s: float = 60.0) -> None:
        """Flush, retrying an unavailable database for up to ``timeout_s`` seconds before raising."""
        deadline = self.clock() + timeout_s
        while True:
            try:
                self.flush()
                return
            except UNAVAILABLE:
                if self.clock() >= deadline:
                    raise
                time.sleep(min(self._backoff, max(0.0, deadline - self.clock())))
                self._backoff = min(self._backoff * 2, self.retry_s[1])

    def stop_requested(self) -> bool:
        """For the engine's ``should_stop``: True once a stop was requested or this attempt no longer
        owns the run. Polls the database at most every heartbeat interval; False while unreachable."""
        if self._stale is not None:
            return True
        now = self.clock()
        if not self._stop and now - self._stop_checked_at >= self.heartbeat_every_s:
            self._stop_checked_at = now
            try:
                with reader(self.engine).connect() as conn:
                    self._stop = runs.stop_requested(conn, self.run_id, self.attempt)
            except UNAVAILABLE as exc:
                log.warning("run %s: stop flag unreadable (%s); training on", self.run_id, exc)
        return self._stop

    # ------------------------------------------------------------------ internals

    def _raise_if_stale(self) -> None:
        if self._stale is not None:
            raise self._stale

    def _maybe_flush(self) -> None:
        now = self.clock()
        due = (
            self.pending >= self.batch_rows
            or now - self._last_flush >= self.flush_every_s
            or (self._status is not None and now - self._last_beat >= self.heartbeat_every_s)
        )
        if not due or now < self._retry_at:
            return
        try:
            self._write_all()
        except UNAVAILABLE as exc:
            self._retry_at = now + self._backoff
            self._backoff = min(self._backoff * 2, self.retry_s[1])
            log.warning(
                "run %s: database unavailable, %d rows kept for retry (%s)", self.run_id, self.pending, exc
            )

    def _write_all(self) -> None:
        while True:
            self._write_chunk()
            if not self.pending:
                break
        self._last_flush = self.clock()
        self._retry_at, self._backoff = -math.inf, self.retry_s[0]

    def _write_chunk(self) -> None:
        """One transaction: a chunk of each buffer plus the heartbeat; buffers shrink on commit."""
        n = self.chunk_rows
        points, records, texts, status = self._points[:n], self._records[:n], self._texts[:n], self._status
        try:
            with self.engine.begin() as conn:
                insert_points(conn, self.run_id, self.attempt, points)  # fenced, even when empty
                if records:
                    insert_pair_records(conn, self.run_id, self.attempt, records)
                insert_pair_texts(conn, self.run_id, texts)
                message, progress = status if status is not None else (None, None)
                if not runs.heartbeat(
                    conn, self.run_id, self.attempt, self._step, self.total_steps, progress, message
                ):
                    raise StaleAttempt(f"run {self.run_id} is no longer running at attempt {self.attempt}")
        except StaleAttempt as exc:
            self._stale = exc
            self._points, self._records, self._texts, self._status = [], [], [], None
            raise
        del self._points[: len(points)], self._records[: len(records)], self._texts[: len(texts)]
        if self._status is status:
            self._status = None
        self._last_beat = self.clock()
        self._unsummarized += len(points)
        if self._unsummarized >= self.summarize_rows:
            self._unsummarized = 0
            with self.engine.begin() as conn:
                summarize_new_points(conn)
