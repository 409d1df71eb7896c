"""The outlier inspector explains that filtering is random (issue 19 item 8): on a real β-DPO run's
step every pair card shows its keep chance (the API's keep probability, in %), the page says how the
draw works, and the filtered pairs' side follows the M0 of the step they were filtered in.

Screenshot: artifacts/screenshots/pairs-keep-chance.png.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Service, Tab
from tests.e2e.test_dashboard import beta_run

pytestmark = pytest.mark.browser


def test_each_pair_of_a_step_shows_its_keep_chance(service: Service, tab: Tab) -> None:
    run_id = beta_run(service)
    filtered = service.api(f"/runs/{run_id}/pairs?kept=false&limit=1")
    assert filtered, "the β-DPO run filtered nothing"
    step = filtered[0]["step"]
    stored = {p["seq"]: p for p in service.api(f"/runs/{run_id}/pairs?step={step}&limit=1000")}
    page = tab.page
    page.goto(f"{service.base}/#/run/{run_id}/pairs?step={step}")
    page.wait_for_selector(".pair")
    assert "Filtering is random" in page.locator("#random-note").inner_text()
    cards = page.locator(".pair")
    assert cards.count() == len(stored)
    shown = sorted(
        int(t.split("keep chance")[1].split("%")[0])
        for t in page.locator(".pair .pair-head").all_inner_texts()
    )
    assert shown == sorted(round(100 * p["keep_probability"]) for p in stored.values())
    dropped = service.api(f"/runs/{run_id}/pairs?kept=false&limit=200")
    assert any(p["keep_probability"] > 0.05 for p in dropped)  # some were dropped by chance, not by rule
    tab.shoot("pairs-keep-chance")

    page.goto(f"{service.base}/#/run/{run_id}/pairs?tab=pairs&side=high")
    page.wait_for_selector("#summary .pair, #pairs-body .state")
    summary = {s["pair_id"]: s for s in service.api(f"/runs/{run_id}/pairs/summary?limit=200")}
    high = page.locator("#summary .pair").evaluate_all("ns => ns.map(n => n.dataset.pairId)")
    assert (
        high == [pid for pid, s in summary.items() if s["mean_filtered_z"] and s["mean_filtered_z"] > 0][:50]
    )
