"""A planted-noise group in a real browser (issue 20): ``alignscope experiment`` runs a small
label-noise experiment for real (a tiny model, 0 and 25 % of the pairs flipped, DPO + filtering and
β-DPO); its group page shows the win-rate table, the audit table (ROC AUC and precision@k with their
intervals, the base rate) and the verdicts; the outlier inspector's "Most suspicious" tab of a noisy
run ranks pairs by noise score and marks the planted ones; the run header shows the β-DPO scope.

Screenshots: artifacts/screenshots/label-noise-group.png, label-noise-inspector.png."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ALIGNSCOPE, REPO, Service, Tab, stop_process
from tests.e2e.test_groups import FIGURE_READY, READY, finished_group, texts

pytestmark = pytest.mark.browser
TINY = {"source": "tiny", "tiny": {"hidden_size": 32, "intermediate_size": 64}}
DATA = {"constructed": {"tasks": ["sort"], "num_pairs": 80}, "max_length": 48, "max_prompt_length": 24}
MINI = {
    "name": "mini-label-noise",
    "title": "Mini label-noise audit (browser test)",
    "summary": "label_noise",
    "warmup": {"model": TINY, "data": DATA, "steps": 3},
    "base": {
        "model": {"source": "pretrained", "path": "{warmup}"},
        "data": {**DATA, "eval_fraction": 0.2, "label_noise_seed": 1},
        "beta_dpo": {"enabled": True, "dynamic_beta": False, "filtering": True},
        "optim": {"max_steps": 6, "batch_size": 16, "micro_batch_size": 16, "lr": 0.003},
        "evaluation": {"at_end": True, "temperatures": [0.0], "num_prompts": 8, "max_new_tokens": 6},
    },
    "sweep": {"key": "data.label_noise", "values": [0.0, 0.25], "label": "noise {value:.0%}"},
    "runs": [{"label": "DPO + filtering"}, {"label": "β-DPO", "set": {"beta_dpo": {"dynamic_beta": True}}}],
}


@pytest.fixture(scope="module")
def noise_group(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    spec = tmp_path_factory.mktemp("experiment") / "mini-label-noise.yaml"
    spec.write_text(json.dumps(MINI))
    process = subprocess.Popen(
        [str(ALIGNSCOPE), "experiment", str(spec)], cwd=REPO, env=service.env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    yield process
    stop_process(process)


def test_the_label_noise_group_shows_the_audit_and_the_inspector_marks_planted_pairs(
    service: Service, tab: Tab, noise_group
) -> None:
    group = finished_group(noise_group)
    page = tab.page
    page.goto(f"{service.base}/#/group/{group}")
    page.wait_for_function(FIGURE_READY)
    assert texts(tab, "#summary-table thead th")[2:] == ["noise 0% T=0", "noise 25% T=0"]  # no paper columns
    rows = page.locator("#audit-table tbody tr")
    assert rows.count() == 2  # one per method at 25 %; nothing is planted at 0 %
    cells = rows.nth(0).locator("td").all_inner_texts()
    assert cells[0] == "noise 25%" and cells[2] == "16"  # k = round(0.25 · 64 training pairs)
    assert "[" in cells[3] and "[" in cells[4]  # ROC AUC and precision@k, each with its interval
    assert float(cells[5]) == pytest.approx(0.25, abs=0.01)  # base rate k / n
    verdicts = texts(tab, "ul.verdicts li")
    assert sum("noise score finds the planted pairs" in v for v in verdicts) == 2
    assert sum("β-DPO − DPO + filtering at noise" in v for v in verdicts) == 2
    tab.shoot("label-noise-group")
    detail = service.api(f"/groups/{group}")
    noisy = next(r for r in detail["runs"] if r["name"].endswith("β-DPO/noise 25%/seed0"))
    page.goto(f"{service.base}/#/run/{noisy['id']}/pairs?tab=suspicious")
    page.wait_for_selector("#suspicious article.pair")
    scores = page.evaluate(
        "[...document.querySelectorAll('#suspicious article')].map(a => +a.dataset.noiseScore)"
    )
    assert scores == sorted(scores, reverse=True)
    assert page.locator("#suspicious .badge.planted").count() >= 1
    tab.shoot("label-noise-inspector")
    page.goto(f"{service.base}/#/run/{noisy['id']}")
    page.wait_for_function(READY)
    assert "β-DPO scope batch" in page.locator("#beta-scope").inner_text()
