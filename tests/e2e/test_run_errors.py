"""A failed run's page shows the error's message once, no traceback, and a link to the trainer's log
for the operator, which holds the traceback (issue 19 item 4, issue 16 item 10). The run fails for
real: its model folder holds weights and a config.json of an unknown model type.

Screenshot: artifacts/screenshots/run-failed.png.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.e2e.conftest import Service, Tab
from tests.e2e.test_live_views import post, wait_finished

pytestmark = pytest.mark.browser


def test_a_failed_run_shows_its_message_once_and_links_the_log(service: Service, tab: Tab) -> None:
    model = service.data_dir / "models" / "not-a-model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(model / "model.safetensors"))
    config = next(p for p in service.api("/presets") if p["name"] == "tiny-dpo")["config"]
    config = {
        **config,
        "name": "fails-to-load",
        "model": {**config["model"], "source": "pretrained", "path": str(model)},
    }
    run = wait_finished(service, post(service, "/runs", config)["id"])
    assert run["status"] == "failed" and "Traceback" not in run["error"] and 'File "' not in run["error"], run

    page = tab.page
    page.goto(f"{service.base}/#/run/{run['id']}")
    page.wait_for_selector("#run-error-message")
    assert page.locator("#run-error-message").inner_text().split() == run["error"].split()
    text = page.locator("#app").inner_text()
    assert "Traceback" not in text and 'File "' not in text
    assert text.count(run["error"].split("\n")[0][:60]) == 1  # once, not in the header's message too
    href = page.locator("#run-log-link").get_attribute("href")
    assert href == f"/api/runs/{run['id']}/log?attempt={run['attempt']}"
    with urllib.request.urlopen(f"{service.base}{href}", timeout=10) as reply:
        log = reply.read().decode()
    assert "Traceback (most recent call last)" in log  # the operator's copy
    tab.shoot("run-failed")
