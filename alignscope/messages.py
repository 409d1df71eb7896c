"""The client's messages to the server and how they become ingest requests.

A message is ``{"seq": n, "kind": "open" | "batch" | "finish", "body": {...}}`` with ``seq`` counting
from 0 in the order the trainer made them. A batch body made by the trainer holds the contracts
dataclasses (MetricPoint, PairRecord, PairText), wire rows, or a zero-argument callable returning
wire rows (alignscope.trl's pair records and texts), converted to wire rows only in the sender thread
(``wire``, once per message); a spooled message is already wire JSON. ``requests`` turns a run of
messages into as few HTTP requests as possible, in order: consecutive batches are merged up to
``max_rows`` rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from contracts.events import MetricPoint, PairRecord, PairText
from contracts.ingest import pair_row, point_row, text_row

Message = dict[str, Any]
ROWS = ("points", "pairs", "texts")
STATUS = ("step", "message", "progress")


@dataclass(frozen=True)
class Request:
    """One HTTP request to send and the seqs of the messages it carries."""

    method: str
    path: str
    body: dict[str, Any]
    seqs: tuple[int, ...]


def wire(message: Message) -> Message:
    """``message`` with its rows as JSON-ready lists (a spooled message is returned as it is)."""
    if message["kind"] != "batch":
        return message
    body = dict(message["body"])
    for name, row in (("points", point_row), ("pairs", pair_row), ("texts", text_row)):
        items = body.get(name, ())
        if callable(items):
            body[name] = items()  # built as wire rows
        else:
            body[name] = [row(item) if isinstance(item, MetricPoint | PairRecord | PairText) else item
                          for item in items]  # fmt: skip
    return {**message, "body": body}


def requests(run_id: str, messages: Iterable[Message], max_rows: int = 20_000) -> Iterator[Request]:
    """The ingest requests for ``messages`` (wire form), in order."""
    base = f"/api/ingest/runs/{run_id}"
    pending: list[Message] = []
    rows = 0
    for message in messages:
        size = sum(len(message["body"].get(name, ())) for name in ROWS)
        if pending and (message["kind"] != "batch" or rows + size > max_rows):
            yield _merged(base, pending)
            pending, rows = [], 0
        if message["kind"] == "batch":
            pending.append(message)
            rows += size
        elif message["kind"] == "open":
            yield Request("PUT", base, message["body"], (message["seq"],))
        else:
            yield Request("POST", f"{base}/finish", message["body"], (message["seq"],))
    if pending:
        yield _merged(base, pending)


def _merged(base: str, batches: list[Message]) -> Request:
    body: dict[str, Any] = {"seq": max(batches[0]["seq"], 0), **{name: [] for name in ROWS}}
    for message in batches:
        for name in ROWS:
            body[name] += message["body"].get(name, ())
        for name in STATUS:
            if message["body"].get(name) is not None:
                body[name] = message["body"][name]
    return Request("POST", f"{base}/batch", body, tuple(m["seq"] for m in batches))
