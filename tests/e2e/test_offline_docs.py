"""/docs works with no network: every request the Swagger UI page makes stays on the service, and the
operations render (issue 19 item 7; before, the page fetched its script from a CDN and stayed blank)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Service, Tab

pytestmark = pytest.mark.browser


def test_api_docs_render_with_every_outside_request_refused(service: Service, tab: Tab) -> None:
    page = tab.page
    outside: list[str] = []
    own = urlsplit(service.base).netloc

    def only_the_service(route) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_service)
    tab.expected.append("net::ERR_FAILED")  # reported if anything outside was asked for
    page.goto(f"{service.base}/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    operations = page.locator(".swagger-ui .opblock").count()
    assert outside == [], f"/docs asked the network for {outside}"
    assert operations >= 10, f"only {operations} operations rendered"
    assert "AlignScope" in page.locator(".swagger-ui .info .title").inner_text()
    tab.shoot("api-docs-offline")
