"""The budget of a request body, enforced before any route reads it (a plain ASGI middleware).

- Size: a body is at most ``max_body_bytes`` (256 KiB by default, like a YAML config), checked
  against Content-Length first and while it streams in → 413. The dataset upload route streams its
  multipart body to disk under its own caps (``backend.api.uploads``) and is not buffered here;
  the YAML route's body is parsed as YAML within its own budgets (``backend.config_files``); the
  ingest routes (``/api/ingest/…``: a training step's rows, up to 32 MiB) read theirs under
  ``contracts.ingest``'s caps (``backend.api.ingest_calls``).
- JSON (no Content-Type, ``application/json`` or ``application/*+json``, which FastAPI parses):
  nested at most ``max_json_depth`` levels → 422 naming the depth; no integer longer than
  MAX_INT_DIGITS digits → 422 naming the field (e.g. ``optim.seed``). Python's own limit
  (4300 digits) would otherwise raise from inside the parser, and deep nesting would recurse.
  The scan runs in a worker thread, so a large body never stalls the event loop.

A body that passes is replayed unchanged to the application.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anyio

from backend.api.security import ASGIApp, Message, Receive, Scope, Send, respond_json

MAX_INT_DIGITS = 40
STREAMED = frozenset({("POST", "/api/datasets")})
OWN_BUDGET = "/api/ingest/"  # these routes cap, scan and parse their bodies themselves
NOT_JSON = frozenset({("POST", "/api/runs/yaml")})  # read as YAML whatever its Content-Type
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


class _Huge:
    """Stands in for an integer literal over the digit budget while the body is parsed."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def json_refusal(body: bytes, max_depth: int) -> tuple[int, Any] | None:
    """(status, detail) when a JSON body breaks the budget, else None (invalid JSON is left to the
    route, which reports it as a 422 of its own)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', body)):
        depth += 1 if match.group() in (b"[", b"{") else -1
        deepest = max(deepest, depth)
        if deepest > max_depth:
            return 422, [_item(["body"], f"JSON nested deeper than {max_depth} levels", "too_deep")]
    try:
        data = json.loads(body, parse_int=_integer)
    except (ValueError, RecursionError):
        return None
    found = _find_huge(data, [])
    if found is None:
        return None
    path, huge = found
    message = f"an integer of {huge.digits} digits (at most {MAX_INT_DIGITS})"
    return 422, [_item(["body", *path], message, "int_too_long")]


def _integer(text: str) -> int | _Huge:
    digits = len(text.lstrip("-"))
    return _Huge(digits) if digits > MAX_INT_DIGITS else int(text)


def _find_huge(value: object, path: list[str | int]) -> tuple[list[str | int], _Huge] | None:
    stack: list[tuple[object, list[str | int]]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, _Huge):
            return where, node
        if isinstance(node, dict):
            stack.extend((child, [*where, key]) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, [*where, index]) for index, child in enumerate(node))
    return None


def _item(loc: list[str | int], message: str, kind: str) -> dict[str, Any]:
    field = ".".join(str(part) for part in loc[1:])
    return {"loc": loc, "field": field, "msg": message, "type": kind}


def _is_json(headers: dict[bytes, bytes]) -> bool:
    kind = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    return (
        not kind
        or kind == b"application/json"
        or (kind.startswith(b"application/") and kind.endswith(b"+json"))
    )


class BodyBudget:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_json_depth: int) -> None:
        self.app, self.max_bytes, self.max_depth = app, max_body_bytes, max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or (scope.get("method"), path) in STREAMED or path.startswith(OWN_BUDGET):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_bytes:
            await respond_json(send, 413, f"the request body is larger than {self.max_bytes} bytes")
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await respond_json(send, 413, f"the request body is larger than {self.max_bytes} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and _is_json(headers) and (scope.get("method"), scope.get("path")) not in NOT_JSON:
            refusal = await anyio.to_thread.run_sync(json_refusal, body, self.max_depth)
            if refusal is not None:
                await respond_json(send, *refusal)
                return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
