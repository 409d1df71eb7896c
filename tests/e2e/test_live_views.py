"""Live views never go stale (issue 19 item 3): a run page opened while the run is queued is watched
to the end, then compared with the stored values — every drawn trace ends at the stored last step and
value of its key, the "Now" readout shows the stored last slopes at the last step, the alerts are the
stored ones, no chart still says it waits, and the stream dot is no longer green. A finished group's
page stops saying "Partial summary – runs are still going" without a reload.

Screenshot: artifacts/screenshots/run-finished.png.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request

import pytest

from tests.e2e.conftest import Service, Tab

pytestmark = pytest.mark.browser
NOW_KEYS = {  # the "Now" readout's rows → stored keys
    "ṡ_w chosen slope": "train/3d/slope_chosen",
    "ṡ_l rejected slope": "train/3d/slope_rejected",
    "S_l rejected share": "train/3d/rejected_share",
    "chosen drawdown": "train/3d/chosen_drawdown",
}
ALERT_KEYS = {
    "drastic drop": "train/3d/alert/drastic_drop",
    "degradation": "train/3d/alert/degradation",
    "dispersion": "train/3d/alert/dispersion",
}
TRACES = """[...document.querySelectorAll('.chart.js-plotly-plot')].filter((n) => n.offsetParent)
  .flatMap((n) => (n.data || []).filter((t) => t.meta && t.x.length)
  .map((t) => ({chart: n.id, key: t.meta, step: t.x[t.x.length - 1], value: t.y[t.y.length - 1]})))"""


def post(service: Service, path: str, body: object) -> dict:
    request = urllib.request.Request(
        f"{service.base}/api{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def launch(service: Service, preset: str, steps: int) -> str:
    config = next(p for p in service.api("/presets") if p["name"] == preset)["config"]
    config = {**config, "name": f"live-{preset}", "optim": {**config["optim"], "max_steps": steps}}
    return post(service, "/runs", config)["id"]


def wait_finished(service: Service, run_id: str, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while (run := service.api(f"/runs/{run_id}"))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"run {run_id} did not finish"
        time.sleep(0.5)
    return run


def last_finite(series: dict) -> tuple[int, float | None]:
    for step, value in zip(reversed(series["steps"]), reversed(series["values"]), strict=True):
        if value is not None and math.isfinite(value):
            return step, value
    return series["steps"][-1], None


def test_a_run_watched_to_its_end_shows_the_stored_final_values(service: Service, tab: Tab) -> None:
    page = tab.page
    run_id = launch(service, "tiny-beta-dpo", 40)
    page.goto(f"{service.base}/#/run/{run_id}")
    page.wait_for_function("document.querySelector('#app').dataset.ready === '1'")
    seen_waiting_with_points = []
    while service.api(f"/runs/{run_id}")["status"] in ("queued", "running"):
        waiting = page.evaluate(
            "[...document.querySelectorAll('.state-empty')].filter((n) => n.offsetParent).length"
        )
        if waiting and int(page.evaluate("document.querySelector('#chart-loss')?.dataset.points || 0")):
            seen_waiting_with_points.append(page.evaluate("document.querySelector('#run-step').innerText"))
        page.wait_for_timeout(300)
    run = wait_finished(service, run_id)
    assert run["status"] == "succeeded", run
    stored = service.api(f"/runs/{run_id}/metrics?max_points=5000")["series"]

    # the stream dot is no longer the green "live" one, and says the values are final
    page.wait_for_function("document.querySelector('.live-dot').dataset.state === 'ended'", timeout=10_000)
    assert "final values" in page.locator("#run-header").inner_text()
    assert page.locator("#run-step").inner_text().endswith(f"{run['step']} / {run['total_steps']}")
    # every drawn trace ends at its key's stored last step and value
    page.wait_for_timeout(2000)  # the page's reconcile after the end (1 s) and its redraw
    traces = page.evaluate(TRACES)
    assert len({t["key"] for t in traces}) >= 10, traces
    for trace in traces:
        step, value = last_finite(stored[trace["key"]])
        assert trace["step"] == step, trace
        assert trace["value"] == pytest.approx(value, rel=1e-9), trace
    assert seen_waiting_with_points == [], "a chart said it waits while the loss chart had points"
    assert page.locator(".state-empty:visible").count() == 0
    # the "Now" readout is the stored last step's values
    readout = page.locator("#slopes")
    assert readout.get_attribute("data-step") == str(last_finite(stored["train/3d/slope_chosen"])[0])
    now = dict(
        zip(readout.locator("dt").all_inner_texts(), readout.locator("dd").all_inner_texts(), strict=True)
    )
    for name, key in NOW_KEYS.items():
        shown = float(now[name].split(" ")[0].replace("−", "-"))
        assert shown == pytest.approx(last_finite(stored[key])[1], rel=5e-3, abs=1e-3), (name, now[name])
    fired = {name for name, key in ALERT_KEYS.items() if any(v and v > 0 for v in stored[key]["values"])}
    alerts = page.locator("#alerts [data-alert]")
    shown_alerts = set(alerts.evaluate_all("ns => ns.map(n => n.dataset.alert)"))
    assert shown_alerts == (fired or {"none"})
    tab.shoot("run-finished")
