"""Browser login: GET /login (a small page), POST /api/login {token} starts a server-side session
(``backend.storage.sessions``) and sets its HttpOnly cookie and the readable CSRF cookie; failed
logins are throttled (``backend.api.login_throttle``: 429 with Retry-After); POST /api/logout ends
the session (its cookie stops working at once) and clears both cookies."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from backend.api.deps import Ctx
from backend.api.errors import ApiError
from backend.api.models import ErrorOut, LoginIn, LoginOut
from backend.api.security import CSRF_COOKIE, SESSION_COOKIE, same
from backend.storage import sessions

router = APIRouter(tags=["auth"])
MAX_AGE_S = 30 * 24 * 3600
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AlignScope · log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:15vh auto;padding:0 1rem}
input,button{font:inherit;padding:.5rem;width:100%;box-sizing:border-box;margin-top:.5rem}
#error{color:#b00020;min-height:1.5em}</style></head>
<body><h1>AlignScope</h1><form id="login"><label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button><p id="error" role="alert"></p></form>
<script>
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = document.getElementById("token").value;
  const reply = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({token})});
  if (reply.status === 429) {
    document.getElementById("error").textContent = (await reply.json()).detail; return;
  }
  if (!reply.ok) { document.getElementById("error").textContent = "Wrong token."; return; }
  const next = new URLSearchParams(location.search).get("next") || "/";
  location.assign(/^\\/(?![\\/\\\\])/.test(next) ? next : "/");
});
</script></body></html>
"""


class Unauthorized(ApiError):
    status = 401


class TooManyAttempts(ApiError):
    status = 429


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page() -> HTMLResponse:
    return HTMLResponse(PAGE)


@router.post("/api/login", responses={401: {"model": ErrorOut}, 429: {"model": ErrorOut}})
def login(body: LoginIn, request: Request, response: Response, ctx: Ctx) -> LoginOut:
    """Check the token (throttled) and start a session: its cookie (HttpOnly) and its CSRF token
    (readable cookie and body), SameSite=Strict."""
    token = ctx.settings.api_token
    if token is None:
        return LoginOut(ok=True, auth_required=False, csrf_token=None)
    client = request.client.host if request.client else "unknown"
    wait = ctx.throttle.retry_after(client)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise TooManyAttempts(
            f"too many failed logins; try again in {seconds} s", {"Retry-After": str(seconds)}
        )
    if not same(body.token, token):
        ctx.throttle.failed(client)
        raise Unauthorized("wrong token")
    ctx.throttle.succeeded(client)
    with ctx.engine.begin() as conn:
        session, csrf = sessions.create(conn, MAX_AGE_S)
    secure = request.url.scheme == "https"
    cookie = {"max_age": MAX_AGE_S, "samesite": "strict", "secure": secure, "path": "/"}
    response.set_cookie(SESSION_COOKIE, session, httponly=True, **cookie)
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, **cookie)
    return LoginOut(ok=True, auth_required=True, csrf_token=csrf)


@router.post("/api/logout", status_code=204)
def logout(request: Request, ctx: Ctx) -> Response:
    """End this browser's session (server side) and clear its cookies."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with ctx.engine.begin() as conn:
            sessions.revoke(conn, cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response
