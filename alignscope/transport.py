"""HTTP to the AlignScope server's ingest API (stdlib ``http.client``, one kept-alive connection).

``send`` returns the server's JSON answer, raises ``Unreachable`` when the message may be retried
later (no connection, a timeout, a 5xx, a 401/403 that a later ``alignscope sync`` with the right
token can fix) and ``Refused`` when the server rejected it for good (404/409/413/422: retrying the
same bytes would fail the same way).
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

RETRYABLE = frozenset({401, 403, 408, 425, 429})
# A kept-alive connection the server closed while it was idle (uvicorn drops them after 5 s, and a
# training step of a real model takes longer) fails like this on its next request: once, on a new
# connection, before the message counts as undelivered. Ingest is idempotent, so a resend adds nothing.
STALE = (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected)


class Unreachable(ConnectionError):
    """The message did not reach the server, or the server could not take it now."""


class Refused(ValueError):
    """The server rejected the message; the text says why and how to fix it."""


class HttpTransport:
    """Ingest messages to ``url`` (e.g. ``http://127.0.0.1:8000``) with ``token`` as a Bearer token."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url {url!r}: expected http://HOST:PORT or https://HOST:PORT")
        self.url = url.rstrip("/")
        self.parts = parts
        self.token = token
        self.timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def send(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """``method`` ``path`` with a JSON body; the parsed JSON answer."""
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        target = self.parts.path.rstrip("/") + path
        reused = self._connection is not None
        try:
            try:
                response, answer = self._exchange(method, target, data, headers)
            except STALE:
                if not reused:
                    raise
                self.close()  # the server closed the idle connection: once more on a new one
                response, answer = self._exchange(method, target, data, headers)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise Unreachable(f"{self.url}: {exc.__class__.__name__}: {exc}") from exc
        if response.status < 300:
            return json.loads(answer)
        detail = _detail(answer)
        if response.status >= 500 or response.status in RETRYABLE:
            if response.status in (401, 403):
                detail += " (check the token: ALIGNSCOPE_API_TOKEN)"
            raise Unreachable(f"{self.url}: HTTP {response.status}: {detail}")
        raise Refused(f"{self.url}{path}: HTTP {response.status}: {detail}")

    def _exchange(
        self, method: str, target: str, data: bytes, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        connection = self._connected()
        connection.request(method, target, data, headers)
        response = connection.getresponse()
        return response, response.read()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connected(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self.parts.scheme == "https" else http.client.HTTPConnection
            self._connection = kind(self.parts.hostname, self.parts.port, timeout=self.timeout_s)
        return self._connection


def _detail(answer: bytes) -> str:
    try:
        return str(json.loads(answer).get("detail"))[:2000]
    except (ValueError, AttributeError):
        return answer[:500].decode("utf-8", "replace")
