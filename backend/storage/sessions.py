"""Browser sessions (issue 16.9): a login creates a random session token (the cookie) and a random
CSRF token bound to it; only the token's sha256 is stored, with both times. A request's cookie is
valid while its row exists and has not expired; logout deletes the row, so a copied cookie stops
working at once. Expired rows are deleted when a new session is created."""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from backend.storage.tables import sessions

MAX_TOKEN = 128


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(conn: Connection, ttl_s: float, now: float | None = None) -> tuple[str, str]:
    """A new session: (cookie token, CSRF token), both 256-bit random, valid for ``ttl_s``."""
    now = time.time() if now is None else now
    conn.execute(delete(sessions).where(sessions.c.expires_at < now))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    row = {"token_hash": _hash(token), "csrf": csrf, "created_at": now, "expires_at": now + ttl_s}
    conn.execute(insert(sessions).values(**row))
    return token, csrf


def csrf_of(conn: Connection, token: str, now: float | None = None) -> str | None:
    """The CSRF token of the live session ``token``; None when there is none (unknown, revoked or
    expired)."""
    if not token or len(token) > MAX_TOKEN:
        return None
    now = time.time() if now is None else now
    stmt = select(sessions.c.csrf).where(sessions.c.token_hash == _hash(token), sessions.c.expires_at >= now)
    return conn.execute(stmt).scalar_one_or_none()


def revoke(conn: Connection, token: str) -> bool:
    """End session ``token``; True when it existed."""
    if not token or len(token) > MAX_TOKEN:
        return False
    return conn.execute(delete(sessions).where(sessions.c.token_hash == _hash(token))).rowcount > 0
