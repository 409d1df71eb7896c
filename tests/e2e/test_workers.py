"""The Workers page and placement in the dashboard: the embedded worker is listed live (CPU only),
a device: cuda launch is refused inline on the form naming the fix, and Resume is offered only
where it can work (not on a run already resumed)."""

from __future__ import annotations

import json
import time

from tests.e2e.conftest import SCREENSHOTS, Service, Tab


def _shoot_view(tab: Tab, name: str) -> None:
    """The visible 1280×800 viewport only (small enough to cite in docs/screenshots/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def _post(service: Service, tab: Tab, path: str, body: dict | None = None) -> dict:
    reply = tab.page.request.post(f"{service.base}/api{path}", data=json.dumps(body or {}),
                                  headers={"content-type": "application/json"})  # fmt: skip
    assert reply.ok, reply.text()
    return reply.json()


def _wait(service: Service, run_id: str, done, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = service.api(f"/runs/{run_id}")
        if done(run):
            return run
        time.sleep(0.3)
    raise TimeoutError(f"run {run_id}: {run['status']} at step {run['step']}")


def test_workers_page_lists_the_live_embedded_worker(service: Service, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{service.base}/#/workers")
    page.locator('#workers-table tr[data-live="1"]').first.wait_for()
    row = page.locator('#workers-table tr[data-live="1"]').first.inner_text()
    assert "CPU only" in row and "cpu" in row and "gpu" in row
    [worker] = [w for w in service.api("/workers") if w["live"]]
    assert str(worker["pid"]) in row
    assert "1 live of" in page.locator("#workers-summary").inner_text()
    tab.shoot("workers")


def test_a_cuda_launch_is_refused_on_the_form_with_the_fix(service: Service, tab: Tab) -> None:
    before = len(service.api("/runs"))
    tab.expected.append("status of 422")
    page = tab.page
    page.goto(f"{service.base}/#/new")
    page.select_option("#preset-select", "tiny-dpo")
    page.select_option("#f-device", "cuda")
    page.click("#launch")
    error = page.locator('.field[data-path="device"] .field-error')
    error.wait_for()
    text = error.inner_text()
    assert "no live worker has CUDA" in text and "device: auto" in text
    assert page.evaluate("location.hash") == "#/new"
    tab.shoot("new-run-cuda-refused")
    _shoot_view(tab, "new-run-cuda-refused-top")
    assert len(service.api("/runs")) == before


def test_resume_is_not_offered_on_a_run_already_resumed(service: Service, tab: Tab) -> None:
    config = {"name": "e2e-resume", "optim": {"max_steps": 400, "batch_size": 8}, "checkpoint_every": 1}
    parent = _post(service, tab, "/runs", config)["id"]
    _wait(service, parent, lambda r: (r["step"] or 0) >= 2)
    _post(service, tab, f"/runs/{parent}/stop")
    _wait(service, parent, lambda r: r["status"] == "stopped")
    page = tab.page
    page.goto(f"{service.base}/#/run/{parent}")
    resume = page.locator("#resume-run")
    page.wait_for_function("document.querySelector('#resume-run')?.disabled === false", timeout=60_000)
    resume.click()
    page.wait_for_function(f"location.hash.startsWith('#/run/') && !location.hash.includes('{parent}')")
    child = page.evaluate("location.hash").split("/")[2]
    page.goto(f"{service.base}/#/run/{parent}")
    page.locator("#resume-blocked").filter(has_text="already resumed").wait_for(
        timeout=60_000
    )  # slow at load 15
    assert resume.is_disabled()
    assert f"already resumed as run {child}" in (resume.get_attribute("title") or "")
    assert f"already resumed as run {child}" in page.locator("#resume-blocked").inner_text()
    tab.shoot("run-already-resumed")
    _shoot_view(tab, "run-already-resumed-top")
    _post(service, tab, f"/runs/{child}/stop")
    _wait(service, child, lambda r: r["status"] in ("stopped", "succeeded", "failed"))
