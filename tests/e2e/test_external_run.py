"""An external TRL run (examples/trl_dpo.py with β-DPO, streamed into the served dashboard) in a real
browser: its page renders with data and says it is external (no resume, no clone, and why), the
config panel shows TRL's config and versions, and the outlier inspector shows its pairs with their
texts, filtered ones included. Any console error fails the test (conftest.tab)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, Service, Tab

pytestmark = pytest.mark.browser
SCREENSHOTS = REPO / "artifacts" / "screenshots"  # copies of these are in docs/screenshots/
POINTS = "Number(document.querySelector('#chart-loss')?.dataset.points || 0)"


def external_run(service: Service, tmp: Path) -> str:
    """The id of a finished 8-step β-DPO TRL run streamed into ``service``."""
    if "external_run" in service.state:
        return service.state["external_run"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNSCOPE_")}
    history = tmp / "history.json"
    command = [sys.executable, "examples/trl_dpo.py", "--url", service.base, "--max-steps", "8", "--beta-dpo"]
    command += ["--run-name", "trl-bdpo", "--spool-dir", str(tmp / "spool"), "--log-history", f"{history}"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    service.state["external_run"] = json.loads(history.read_text())["run_id"]
    return service.state["external_run"]


def test_external_run_page_and_outlier_inspector(service: Service, tab: Tab, tmp_path: Path) -> None:
    run_id = external_run(service, tmp_path)
    page = tab.page
    page.goto(f"{service.base}/#/run/{run_id}")
    page.wait_for_selector("#chart-loss[data-ready='1']")
    assert int(page.evaluate("Number(document.querySelector('#chart-loss').dataset.points || 0)")) >= 8
    note = page.locator("#external-note")
    assert note.is_visible() and "Resume and clone are not offered" in note.inner_text()
    assert not page.locator("#resume-run").is_visible() and not page.locator("#clone-run").is_visible()
    assert "external (trl)" in page.locator("#run-name + .badge + span").inner_text()
    title, note_box = page.locator("#run-name").bounding_box(), note.bounding_box()
    line = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#run-name')).lineHeight)")
    assert title and note_box and note_box["width"] > 800  # the note spans the header row by itself
    assert title["height"] < 2 * line  # so the run's name is not squeezed into a column of one word a line
    config = page.locator("#config-body").inner_text()
    assert "trl.beta" in config and "trl" in config and "1.16.0" in config
    page.wait_for_selector("#chart-discrepancy[data-ready='1']")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "external-trl-run.png"), full_page=False)

    page.goto(f"{service.base}/#/run/{run_id}/pairs?step=5")  # the inspector, as a click on step 5 opens it
    page.wait_for_selector(".pair")
    assert page.locator(".pair").count() == 8
    first = page.locator(".pair").first
    for side in ("prompt", "chosen", "rejected"):
        assert first.locator(f".{side} pre").inner_text().strip(), f"{side} text missing"
    page.click("[data-tab='pairs']")
    page.wait_for_selector("#summary .pair")
    assert "filtered" in page.locator("#summary .pair").first.locator(".pair-head").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "external-trl-pairs.png"), full_page=False)

    page.goto(f"{service.base}/#/runs")
    row = page.locator(f"tr[data-run-id='{run_id}']")
    row.wait_for()
    assert "external · trl" in row.inner_text()
    assert row.locator("text=Resume").count() == 0 and row.locator("text=Clone").count() == 0


def test_compare_an_external_run_with_a_native_one(service: Service, tab: Tab, tmp_path: Path) -> None:
    external, native = external_run(service, tmp_path), service.dpo_run_id()
    page = tab.page
    page.goto(f"{service.base}/#/runs")
    for run_id in (native, external):
        page.check(f"tr[data-run-id='{run_id}'] input[type=checkbox]")
    page.click("#compare-selected")
    page.wait_for_selector("#app[data-ready='1']")
    for key in ("train/loss", "train/rewards/margin"):
        assert page.locator(f".chart[data-key='{key}'] .scatterlayer .trace").count() == 2, key
    page.wait_for_selector("#chart-distribution[data-ready='1']", timeout=30_000)
    page.screenshot(path=str(SCREENSHOTS / "external-trl-compare.png"), full_page=False)


def test_live_external_run_grows_and_stops_from_its_page(service: Service, tab: Tab, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNSCOPE_")}
    command = [sys.executable, "examples/trl_dpo.py", "--url", service.base, "--max-steps", "2000"]
    command += ["--run-name", "trl-live", "--spool-dir", str(tmp_path / "spool")]
    trainer = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (found := service.api("/runs?name=trl-live")):
            assert time.monotonic() < deadline and trainer.poll() is None, "the TRL run did not open"
            time.sleep(1)
        run_id = found[0]["id"]
        page = tab.page
        page.goto(f"{service.base}/#/run/{run_id}")
        page.wait_for_function(f"{POINTS} >= 3", timeout=120_000)
        seen = int(page.evaluate(POINTS))
        page.wait_for_function(f"{POINTS} > {seen}", timeout=60_000)  # new steps arrive over the stream
        page.click("#stop-run")
        page.wait_for_selector("#run-status[data-status='stopped']", timeout=120_000)
        assert trainer.wait(120) == 0, trainer.stderr.read()[-3000:] if trainer.stderr else ""
        run = service.api(f"/runs/{run_id}")
        assert run["status"] == "stopped" and run["step"] < 2000
    finally:
        if trainer.poll() is None:
            os.killpg(trainer.pid, 9)
            trainer.wait()
