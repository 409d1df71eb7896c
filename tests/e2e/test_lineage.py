"""A resumed run shows its whole lineage (issue 19 item 1): a real run is stopped mid-way, resumed from
its checkpoint, and the resumed run's page draws the parent's steps up to the resume point and its own
after, marks the resume point, names the parent, lists the alerts the lineage raised (before: a green
"No 3D alert so far" although the parent raised them) and opens the parent's pairs at an early step.

Screenshot: artifacts/screenshots/run-resumed.png.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import Service, Tab
from tests.e2e.test_live_views import ALERT_KEYS, TRACES, last_finite, post, wait_finished

pytestmark = pytest.mark.browser
STEPS = 200  # long enough to be stopped mid-way however fast the warm trainer starts (40 once finished first)


def stopped_mid_way(service: Service) -> dict:
    config = next(p for p in service.api("/presets") if p["name"] == "tiny-dpo")["config"]
    config = {**config, "name": "lineage-parent", "optim": {**config["optim"], "max_steps": STEPS}}
    run_id = post(service, "/runs", config)["id"]
    deadline = time.monotonic() + 120
    while (service.api(f"/runs/{run_id}")["step"] or 0) < 10:
        assert time.monotonic() < deadline, "the parent run did not reach step 10"
        time.sleep(0.2)
    post(service, f"/runs/{run_id}/stop", {})
    return wait_finished(service, run_id)


def test_a_resumed_runs_page_shows_parent_then_child_with_the_resume_point(
    service: Service, tab: Tab
) -> None:
    parent = stopped_mid_way(service)
    assert parent["status"] == "stopped" and parent["step"] < STEPS, parent
    child = post(service, f"/runs/{parent['id']}/resume", {})
    assert child["resume_step"] == parent["step"]  # a stop checkpoints at its last step
    child = wait_finished(service, child["id"])
    assert child["status"] == "succeeded", child
    history = service.api(f"/runs/{child['id']}/metrics?max_points=5000")
    assert [s["run_id"] for s in history["lineage"]] == [parent["id"], child["id"]]
    own = service.api(f"/compare?run={child['id']}&key=train/loss&max_points=5000")

    page = tab.page
    page.goto(f"{service.base}/#/run/{child['id']}")
    page.wait_for_function("document.querySelector('#chart-loss')?.dataset.ready === '1'")
    loss = page.evaluate("document.querySelector('#chart-loss').data[0].x")
    assert loss[0] == 1 and loss[-1] == STEPS and loss == own["series"][child["id"]]["train/loss"]["steps"]
    assert (
        page.evaluate("document.querySelector('#chart-loss').layout.xaxis.dtick") is None
    )  # no label per step
    shapes = page.evaluate(
        "document.querySelector('#chart-loss').layout.shapes.map(s => [s.x0, s.label?.text])"
    )
    assert [child["resume_step"], "resumed"] in shapes
    assert f"after step {child['resume_step']}" in page.locator("#resumed-from").inner_text()
    for trace in page.evaluate(TRACES):  # the page's values are the lineage's stored values
        step, value = last_finite(history["series"][trace["key"]])
        assert (trace["step"], trace["value"]) == (step, pytest.approx(value, rel=1e-9)), trace
    fired = {
        name for name, key in ALERT_KEYS.items() if any(v and v > 0 for v in history["series"][key]["values"])
    }
    alerts = page.locator("#alerts [data-alert]").evaluate_all("ns => ns.map(n => n.dataset.alert)")
    assert set(alerts) == (fired or {"none"})
    tab.shoot("run-resumed")

    page.goto(f"{service.base}/#/compare?runs={child['id']},{parent['id']}&keys=train/loss")
    page.wait_for_function("document.querySelector(\".chart[data-key='train/loss']\")?.dataset.ready === '1'")
    compared = page.evaluate(
        "(() => { const n = document.querySelector(\".chart[data-key='train/loss']\");"
        " return {x: n.data.map(t => [t.x[0], t.x[t.x.length - 1]]),"
        " shapes: n.layout.shapes.map(s => s.x0)}; })()"
    )
    assert [1, STEPS] in compared["x"] and compared["shapes"] == [child["resume_step"]]

    page.goto(f"{service.base}/#/run/{child['id']}/pairs?step=3")
    page.wait_for_selector(".pair")
    assert page.locator(".pair").count() == page.locator(".pair-head:has-text('step 3')").count() >= 1
