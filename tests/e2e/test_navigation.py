"""The router under fast navigation, in a real browser: a page whose data arrives after its route was
left draws nothing over the page now shown (CI once saw the run page of a just-resumed child drawn
under the parent's URL, its Resume button saying "run is running")."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Service, Tab
from tests.e2e.test_live_views import post, wait_finished

pytestmark = pytest.mark.browser
READY = "document.querySelector('#app').dataset.ready === '1'"


def _finished_run(service: Service, name: str) -> dict:
    config = next(p for p in service.api("/presets") if p["name"] == "tiny-dpo")["config"]
    config = {**config, "name": name, "optim": {**config["optim"], "max_steps": 2}}
    return wait_finished(service, post(service, "/runs", config)["id"])


def test_a_page_answered_after_its_route_was_left_draws_nothing(service: Service, tab: Tab) -> None:
    late, shown = _finished_run(service, "nav-late"), _finished_run(service, "nav-shown")
    page = tab.page
    held: list = []
    page.route(f"**/api/runs/{late['id']}", lambda route: held.append(route))  # held back
    page.goto(f"{service.base}/#/run/{late['id']}")
    while not held:  # the app is up and has asked for the late run
        page.wait_for_timeout(50)
    page.evaluate(f"location.hash = '#/run/{shown['id']}'")
    page.wait_for_function(READY)
    assert page.locator("#run-name").inner_text() == "nav-shown"

    # Release the held answer: the late page's mount now runs to its end (it fetches its metrics after
    # it has drawn its header), then the router drops it.
    with page.expect_response(lambda r: f"/api/runs/{late['id']}/metrics" in r.url):
        held[0].continue_()
    page.wait_for_timeout(500)
    assert page.locator("#run-name").count() == 1
    assert page.locator("#run-name").inner_text() == "nav-shown"
    assert page.evaluate("location.hash") == f"#/run/{shown['id']}"
    assert page.evaluate(READY)
