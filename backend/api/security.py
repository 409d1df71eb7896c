"""Request checks in front of every route (a plain ASGI middleware, so streams are not buffered):

1. Host: the Host header must be a loopback name or in ``allowed_hosts`` (DNS-rebinding defence);
   with an API token and no explicit list, any Host is accepted (the token is the defence). → 400
2. Origin on state-changing methods (POST/PUT/PATCH/DELETE): a browser's ``Origin`` must equal the
   request's own origin or be in ``allowed_origins``; ``Sec-Fetch-Site: cross-site`` is refused too.
   Requests without those headers (curl, scripts) pass. → 403
3. Token (only when ``api_token`` is set): ``Authorization: Bearer TOKEN``, or the HttpOnly session
   cookie set by POST /api/login: a random token naming a live server-side session
   (``backend.storage.sessions``; logout deletes it). Cookie-authenticated state-changing requests
   must also send the ``X-CSRF-Token`` header equal to THAT session's CSRF token (also readable in
   the ``alignscope_csrf`` cookie; a cookie the client forges matches no session). → 401 / 403; a
   browser navigating to a page is redirected to /login instead. /login and /api/login are open.

Every response also gets nosniff, frame-deny and same-origin referrer headers.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

import anyio

from backend.api.options import LOOPBACK_HOSTS, ApiOptions

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COOKIE = "alignscope_session"
CSRF_COOKIE = "alignscope_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = frozenset({"/login", "/api/login"})
EXTRA_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


SessionLookup = Callable[[str], "str | None"]  # session cookie → its CSRF token, None when not live


def same(a: str | None, b: str | None) -> bool:
    """Constant-time string equality; False when either is missing."""
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


class SecurityMiddleware:
    """See the module docstring. ``token`` None disables check 3."""

    def __init__(self, app: ASGIApp, token: str | None, options: ApiOptions, sessions: SessionLookup) -> None:
        self.app, self.token, self.options, self.sessions = app, token, options, sessions
        hosts = options.allowed_hosts
        self.any_host = (hosts is None and token is not None) or (hosts is not None and "*" in hosts)
        self.hosts = frozenset(LOOPBACK_HOSTS) | frozenset(hosts or ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = await self.refusal(scope)
        if refusal is not None:
            await respond_json(send, *refusal)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *EXTRA_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def refusal(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """(status, message, extra headers) when the request must be refused, else None."""
        headers = _headers(scope)
        host = headers.get("host", "")
        if not self.any_host and _hostname(host) not in self.hosts:
            return 400, f"Host '{host[:100]}' is not allowed (set ALIGNSCOPE_ALLOWED_HOSTS)", []
        unsafe = scope.get("method", "GET") in UNSAFE
        if unsafe and not self._same_origin(headers, scope, host):
            return 403, "cross-origin request refused", []
        if self.token is None or scope.get("path") in OPEN_PATHS:
            return None
        return await self._auth_refusal(scope, headers, unsafe)

    def _same_origin(self, headers: dict[str, str], scope: Scope, host: str) -> bool:
        origin = headers.get("origin")
        if origin is None:
            return headers.get("sec-fetch-site") != "cross-site"
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        return origin.lower() in (f"{scheme}://{host}".lower(), *self.options.allowed_origins)

    async def _auth_refusal(
        self, scope: Scope, headers: dict[str, str], unsafe: bool
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        assert self.token is not None
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and same(credentials.strip(), self.token):
            return None
        cookie = _cookies(headers).get(SESSION_COOKIE)
        csrf = await anyio.to_thread.run_sync(self.sessions, cookie) if cookie else None
        if csrf is not None:
            if unsafe and not same(headers.get(CSRF_HEADER), csrf):
                return 403, f"missing or wrong {CSRF_HEADER} header (copy the {CSRF_COOKIE} cookie)", []
            return None
        path = scope.get("path", "/")
        if not unsafe and not path.startswith("/api/") and "text/html" in headers.get("accept", ""):
            return 303, "log in first", [(b"location", f"/login?next={quote(path)}".encode())]
        message = "missing or wrong API token: send 'Authorization: Bearer TOKEN' or log in at /login"
        return 401, message, [(b"www-authenticate", b"Bearer")]


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _hostname(host: str) -> str:
    """The Host header without its port, lower-cased ("[::1]:8000" → "[::1]")."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is treated as no cookies
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


async def respond_json(
    send: Send, status: int, detail: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send a whole ``{"detail": detail}`` JSON response from a middleware."""
    extra = extra or []
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [*extra, *EXTRA_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
