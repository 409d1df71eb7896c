"""The background sender: the trainer's thread only appends messages to a bounded queue; one daemon
thread delivers them in order, so a training step never waits for the network.

The queue is a deque the thread drains every ``flush_s`` (and at ``close``): a ``put`` wakes no
thread, so the training thread never hands the GIL over per step, and the thread wires, encodes and
sends (or spools) a flush interval's messages at once.

Delivery rules:
- while the spool holds messages, new ones are appended to it and the spool is delivered first
  (in seq order), so the server sees messages in the order they were made;
- a message that cannot be delivered (``Unreachable``) goes to the spool, and delivery is retried
  after a backoff of ``retry_s`` doubling up to ``max_retry_s``;
- when the queue is full (the thread is stuck in a slow request), ``put`` appends the message to the
  spool from the trainer's thread instead of waiting;
- a message the server refuses for good (``Refused``: 4xx other than 401/403) is written to
  ``<run_id>.refused.jsonl`` beside the spool, with a warning, and delivery goes on;
- with nothing to send for ``heartbeat_s`` an empty batch renews the run's heartbeat and fetches the
  dashboard's stop flag, which every acknowledgement carries (``stop_requested``).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from alignscope.messages import Message, Request, requests, wire
from alignscope.spool import Spool
from alignscope.transport import Refused, Unreachable

log = logging.getLogger("alignscope")


class Transport(Protocol):
    def send(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Sender:
    """Delivers run ``run_id``'s messages through ``transport`` (None: offline, spool only)."""

    def __init__(
        self,
        run_id: str,
        transport: Transport | None,
        spool: Spool,
        *,
        queue_size: int = 10_000,
        flush_s: float = 0.5,
        heartbeat_s: float = 5.0,
        retry_s: float = 0.5,
        max_retry_s: float = 5.0,
        on_ack: Callable[[dict[str, Any]], None] = lambda ack: None,
    ) -> None:
        self.run_id = run_id
        self.transport = transport
        self.spool = spool
        self.queue: collections.deque[Message] = collections.deque()
        self.queue_size = queue_size
        self.flush_s, self.heartbeat_s = flush_s, heartbeat_s
        self.retry_s, self.max_retry_s = retry_s, max_retry_s
        self.on_ack = on_ack
        self.delivered = 0  # messages acknowledged by the server
        self.spilled = 0  # messages the trainer's thread spooled because the queue was full
        self._backoff = retry_s
        self._retry_at = 0.0
        self._last_sent = time.monotonic()
        self._closing = threading.Event()  # set by close(); it also wakes the thread
        self._thread = threading.Thread(target=self._loop, name="alignscope-sender", daemon=True)
        self._thread.start()

    def put(self, message: Message) -> None:
        """Queue ``message`` without blocking or waking the thread (spooled when the queue is full)."""
        if len(self.queue) < self.queue_size:
            self.queue.append(message)
        else:
            self.spool.append([message])
            self.spilled += 1

    def close(self, timeout_s: float) -> bool:
        """Deliver what is queued and spooled for up to ``timeout_s``; True when nothing is left
        undelivered (else it stays in the spool)."""
        self._closing.set()
        self._retry_at = 0.0
        self._thread.join(timeout_s)
        if self._thread.is_alive():  # stuck in a request: what it holds is appended to the spool by it
            self._deadline_passed = True
            self._thread.join(self.transport_timeout())
        if self.transport is not None:
            self.transport.close()
        return len(self.spool) == 0 and not self.queue

    def transport_timeout(self) -> float:
        return float(getattr(self.transport, "timeout_s", 10.0)) + 1.0

    # ------------------------------------------------------------------ the thread

    _deadline_passed = False

    def _loop(self) -> None:
        while True:
            taken = self._take()
            closing = self._closing.is_set()
            if self._deadline_passed:
                self.spool.append(taken + self._drain_queue())
                return
            self._deliver(taken)
            if closing and not self.queue and (len(self.spool) == 0 or self.transport is None):
                return
            if closing and len(self.spool) and time.monotonic() < self._retry_at:
                time.sleep(min(0.1, self._retry_at - time.monotonic()))

    def _take(self) -> list[Message]:
        """The messages queued during a flush_s wait (close() ends the wait)."""
        self._closing.wait(self.flush_s)
        return self._drain_queue()

    def _drain_queue(self) -> list[Message]:
        taken = []
        while True:
            try:
                taken.append(self.queue.popleft())
            except IndexError:
                return taken

    def _deliver(self, taken: list[Message]) -> None:
        waiting = self.transport is None or time.monotonic() < self._retry_at
        if len(self.spool) or waiting:
            self.spool.append(taken)
            if not waiting:
                self._send_spool()
            return
        if not taken and time.monotonic() - self._last_sent >= self.heartbeat_s:
            taken = [{"seq": -1, "kind": "batch", "body": {}}]  # a heartbeat, never spooled
        left = self._send([wire(m) for m in taken])
        self.spool.append([m for m in left if m["seq"] >= 0])

    def _send_spool(self) -> None:
        messages = self.spool.read()
        left = self._send(messages)
        delivered = {m["seq"] for m in messages} - {m["seq"] for m in left}
        if delivered:
            self.spool.remove(delivered)

    def _send(self, messages: list[Message]) -> list[Message]:
        """Send ``messages`` in order; returns those not delivered (from the first failure on)."""
        assert self.transport is not None
        done: set[int] = set()
        for request in requests(self.run_id, messages):
            try:
                ack = self.transport.send(request.method, request.path, request.body)
            except Unreachable as exc:
                self._failed(exc)
                return [m for m in messages if m["seq"] not in done]
            except Refused as exc:
                self._refused(request, exc)
            else:
                self.on_ack(ack)
                self._backoff = self.retry_s
                self.delivered += len(request.seqs)
            done.update(request.seqs)
            self._last_sent = time.monotonic()
        return []

    def _failed(self, exc: Exception) -> None:
        if self._backoff == self.retry_s:
            log.warning("alignscope: server unreachable, spooling to %s (%s)", self.spool.path, exc)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.max_retry_s)

    def _refused(self, request: Request, exc: Refused) -> None:
        path = self.spool.path.with_suffix(".refused.jsonl")
        log.error("alignscope: the server refused a message (kept in %s): %s", path, exc)
        with path.open("a", encoding="utf-8") as handle:
            entry = {"request": request.path, "body": request.body, "error": str(exc)}
            handle.write(json.dumps(entry) + "\n")
