"""Polish of issue 19 item 9, in a real browser against real runs: the runs table fits a 1400 px window
with long names; the tiny β-DPO preset evaluates, so its win-rate cell holds a number; the S_l chart
keeps S_l = 1 in view with its fraction axis on 0…1; a DPO run shows no β-DPO panel nor β-DPO config
keys; the toy experiment's card states its runs' step counts.

Screenshots: artifacts/screenshots/runs-1400.png, run-dpo.png.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Service, Tab
from tests.e2e.test_dashboard import beta_run
from tests.e2e.test_live_views import post, wait_finished

pytestmark = pytest.mark.browser
READY = "document.querySelector('#app').dataset.ready === '1'"


def test_runs_table_fits_1400_px_and_shows_a_win_rate(service: Service, tab: Tab) -> None:
    beta = beta_run(service, finished=True)
    assert service.api(f"/runs/{beta}/evaluations"), "the tiny-beta-dpo preset evaluates at the end"
    config = next(p for p in service.api("/presets") if p["name"] == "tiny-dpo")["config"]
    long = {**config, "name": "toy-3d/s1 on/on/seed0 " + "with a long descriptive name " * 4,
            "group": "an-experiment-group-with-a-long-name-" * 3, "preset": "experiment:toy-3d-s1-flex-quick",
            "optim": {**config["optim"], "max_steps": 2}}  # fmt: skip
    wait_finished(service, post(service, "/runs", long)["id"])
    page = tab.page
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{service.base}/#/runs")
    page.wait_for_selector(f"tr[data-run-id='{beta}']")
    page.wait_for_function(
        f"document.querySelector(\"tr[data-run-id='{beta}'] td:nth-child(9)\").innerText.includes('%')"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    tab.shoot("runs-1400")


def test_share_axes_and_what_applies_to_a_dpo_run(service: Service, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{service.base}/#/run/{beta_run(service)}")
    page.wait_for_function("document.querySelector('#chart-share')?.dataset.ready === '1'")
    low, high = page.evaluate("document.querySelector('#chart-share').layout.yaxis.range")
    assert low <= 0 and high >= 1  # S_l = 1, the reference line, is in view
    assert page.evaluate("document.querySelector('#chart-share').layout.yaxis2.range") == [0, 1.02]
    assert page.locator("#panel-beta").is_visible()

    page.goto(f"{service.base}/#/run/{service.dpo_run_id()}")
    page.wait_for_function("document.querySelector('#chart-loss')?.dataset.ready === '1'")
    assert page.locator("#panel-beta").is_hidden()  # β is β0 and nothing is filtered
    keys = page.locator("#config-body .kv-key").all_inner_texts()
    assert "beta_dpo.enabled" in keys and not any(
        k.startswith(("beta_dpo.alpha", "model.toy.")) for k in keys
    )
    tab.shoot("run-dpo")


def test_the_toy_experiment_card_states_its_step_counts(service: Service, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{service.base}/#/groups")
    page.wait_for_function(READY)
    card = page.locator("[data-preset='toy-3d']").inner_text()
    assert "6 runs of 3000 steps (quick: 6 of 1500 steps)" in card
