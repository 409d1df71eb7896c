"""Token auth (bearer and login cookie with CSRF), Host and Origin checks."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend.api import create_app
from backend.api.options import ApiOptions
from tests.integration.api_support import BASE_URL, TINY

TOKEN = "s3cret-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}

pytest_plugins = ("tests.integration.api_fixtures",)


@pytest.fixture
def secured(settings, queue, options):
    app = create_app(settings.model_copy(update={"api_token": TOKEN}), enqueuer=queue, options=options)
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/runs"),
        ("GET", "/api/health"),
        ("GET", "/api/stream?until_idle_s=0.1"),
        ("GET", "/api/runs/x/export"),
        ("GET", "/api/datasets"),
        ("POST", "/api/runs"),
        ("GET", "/openapi.json"),
    ],
)
def test_token_missing_or_wrong_is_401(secured, method, path):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        reply = secured.request(method, path, headers=headers)
        assert reply.status_code == 401, (path, headers)
        assert reply.headers["www-authenticate"] == "Bearer"
        assert "API token" in reply.json()["detail"]


def test_bearer_token_opens_every_route(secured, queue):
    assert secured.get("/api/health", headers=BEARER).json()["auth"] is True
    created = secured.post("/api/runs", json=TINY, headers=BEARER)
    assert created.status_code == 201
    run_id = created.json()["id"]
    stream = secured.get(f"/api/runs/{run_id}/stream?until_idle_s=0.1", headers=BEARER)
    assert stream.status_code == 200 and "event: status" in stream.text
    assert secured.get(f"/api/runs/{run_id}/export", headers=BEARER).status_code == 200


def test_login_cookie_needs_the_csrf_header_for_changes(secured):
    assert secured.post("/api/login", json={"token": "wrong"}).status_code == 401
    reply = secured.post("/api/login", json={"token": TOKEN})
    assert reply.status_code == 200
    csrf = reply.json()["csrf_token"]
    cookies = reply.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("alignscope_session="))
    assert "HttpOnly" in session and "SameSite=strict" in session and TOKEN not in session
    assert "HttpOnly" not in next(c for c in cookies if c.startswith("alignscope_csrf="))
    assert secured.get("/api/runs").status_code == 200  # the cookie is enough to read
    refused = secured.post("/api/runs", json=TINY)
    assert refused.status_code == 403 and "x-csrf-token" in refused.json()["detail"]
    assert secured.post("/api/runs", json=TINY, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert secured.post("/api/runs", json=TINY, headers={"X-CSRF-Token": csrf}).status_code == 201
    assert secured.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 204


def test_login_page_and_redirect_for_browsers(secured):
    page = secured.get("/login")
    assert page.status_code == 200 and 'type="password"' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    redirect = secured.get("/runs/abc", headers={"Accept": "text/html"}, follow_redirects=False)
    assert (redirect.status_code, redirect.headers["location"]) == (303, "/login?next=/runs/abc")


def test_cross_origin_post_and_delete_are_403(client):
    evil = {"Origin": "http://evil.example"}
    assert client.post("/api/runs", json=TINY, headers=evil).status_code == 403
    assert client.delete("/api/runs/x", headers=evil).status_code == 403
    assert client.post("/api/runs", json=TINY, headers={"Origin": "null"}).status_code == 403
    assert client.post("/api/runs", json=TINY, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.get("/api/runs").json() == []
    assert client.post("/api/runs", json=TINY, headers={"Origin": BASE_URL}).status_code == 201
    assert client.get("/api/runs", headers=evil).status_code == 200  # reads are not state changes


def test_cross_origin_post_is_403_even_with_a_token(secured):
    headers = {**BEARER, "Origin": "https://evil.example"}
    assert secured.post("/api/runs", json=TINY, headers=headers).status_code == 403


def test_unknown_host_is_refused_without_a_token(client, settings, queue):
    reply = client.get("/api/health", headers={"Host": "rebind.evil.example"})
    assert reply.status_code == 400
    assert client.get("/api/health", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    assert client.get("/api/health", headers={"Host": "[::1]:8000"}).status_code == 200
    listed = ApiOptions(allowed_hosts=("lab.example",))
    app = create_app(settings, enqueuer=queue, options=listed, frontend_dir=None)
    with TestClient(app, base_url="http://lab.example:8000") as lab:
        assert lab.get("/api/health").status_code == 200


def test_any_host_with_a_token_unless_a_list_is_given(secured):
    reply = secured.get("/api/health", headers={**BEARER, "Host": "gpu-box.internal:8000"})
    assert reply.status_code == 200
