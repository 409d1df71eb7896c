"""Browser sessions (issue 16.9): every login is a new random server-side session that logout
revokes (a replayed cookie is refused), the CSRF token is the session's own (a forged CSRF cookie
with a matching header is refused), and failed logins are throttled per client and overall."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient

from backend.api import create_app
from backend.api.login_throttle import LoginThrottle
from backend.settings import Settings
from backend.storage import sessions
from tests.integration.api_support import BASE_URL, TINY

pytest_plugins = ("tests.integration.api_fixtures",)
TOKEN = "s3cret-token"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(settings, queue, options):
    return create_app(settings.model_copy(update={"api_token": TOKEN}), enqueuer=queue, options=options)


def _browser(app) -> TestClient:
    return TestClient(app, base_url=BASE_URL)


def _login(browser: TestClient) -> tuple[str, str]:
    reply = browser.post("/api/login", json={"token": TOKEN})
    assert reply.status_code == 200, reply.text
    return browser.cookies["alignscope_session"], reply.json()["csrf_token"]


def test_each_login_is_a_new_random_session_and_logout_revokes_it(app):
    with _browser(app) as first, _browser(app) as second:
        cookie, csrf = _login(first)
        other, _ = _login(second)
        assert cookie != other and TOKEN not in cookie and len(cookie) >= 40
        assert first.get("/api/runs").status_code == 200
        assert first.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert second.get("/api/runs").status_code == 200  # another browser's session lives on
    with _browser(app) as replay:
        replay.cookies.set("alignscope_session", cookie)
        assert replay.get("/api/runs").status_code == 401  # the copied cookie died with the logout
        replay.cookies.set("alignscope_session", "f" * 43)  # a guessed one
        assert replay.get("/api/runs").status_code == 401


def test_csrf_must_be_the_sessions_own(app):
    with _browser(app) as browser, _browser(app) as other:
        _, csrf = _login(browser)
        _, foreign = _login(other)
        forged = "forged-value"
        browser.cookies.set("alignscope_csrf", forged)
        refused = browser.post("/api/runs", json=TINY, headers={"X-CSRF-Token": forged})
        assert refused.status_code == 403  # cookie and header agree, but not with the session
        assert browser.post("/api/runs", json=TINY, headers={"X-CSRF-Token": foreign}).status_code == 403
        assert browser.post("/api/runs", json=TINY, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_failed_logins_are_throttled_per_client_then_allowed_again(app):
    clock = Clock()
    app.state.context.throttle.clock = clock
    with _browser(app) as browser:
        for _ in range(5):
            assert browser.post("/api/login", json={"token": "guess"}).status_code == 401
        blocked = browser.post("/api/login", json={"token": TOKEN})  # even the right token waits
        assert blocked.status_code == 429 and blocked.headers["retry-after"] == "60"
        assert "too many failed logins" in blocked.json()["detail"]
        clock.now += 61
        _login(browser)
        assert browser.get("/api/runs").status_code == 200


def test_the_overall_cap_holds_across_clients():
    clock = Clock()
    throttle = LoginThrottle(per_client=5, overall=8, window_s=60, clock=clock)
    for index in range(8):
        assert throttle.retry_after(f"10.0.0.{index}") is None
        throttle.failed(f"10.0.0.{index}")
    assert throttle.retry_after("10.0.0.99") == 60  # a fresh address waits for the oldest failure
    clock.now += 30
    assert throttle.retry_after("10.0.0.99") == 30
    throttle.succeeded("10.0.0.1")  # a success clears that client, not the overall count
    assert throttle.retry_after("10.0.0.1") == 30


def test_sessions_expire(app):
    engine = app.state.context.engine
    with engine.begin() as conn:
        token, csrf = sessions.create(conn, ttl_s=10, now=100.0)
        assert sessions.csrf_of(conn, token, now=105.0) == csrf
        assert sessions.csrf_of(conn, token, now=111.0) is None
        assert sessions.csrf_of(conn, "x" * 500) is None
        sessions.create(conn, ttl_s=10, now=200.0)  # creating a session deletes the expired ones
        assert sessions.csrf_of(conn, token, now=105.0) is None


@pytest.mark.postgres
def test_sessions_on_postgresql(tmp_path, queue, options):
    try:
        admin = psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    name = f"as_sessions_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {name}")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options={quote(f'-csearch_path={name}')}"
    settings = Settings(data_dir=tmp_path, database_url=url, api_token=TOKEN)
    pg_app = create_app(settings, enqueuer=queue, options=options, frontend_dir=None)
    try:
        with _browser(pg_app) as browser:
            cookie, csrf = _login(browser)
            assert browser.post("/api/runs", json=TINY, headers={"X-CSRF-Token": csrf}).status_code == 201
            assert browser.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        with _browser(pg_app) as replay:
            replay.cookies.set("alignscope_session", cookie)
            assert replay.get("/api/runs").status_code == 401
    finally:
        pg_app.state.context.engine.dispose()
        admin.execute(f"DROP SCHEMA {name} CASCADE")
        admin.close()
