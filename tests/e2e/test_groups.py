"""Experiment groups in a real browser against a real service (`alignscope serve` with its worker):

- a win-rate group made for real by ``alignscope experiment`` (a two-run experiment on a tiny model:
  a 3-step SFT warm-up, DPO and β-DPO for 2 steps, win rates at T = 0 and 1): its page shows our win
  rates with their intervals next to the paper's numbers and the citation, the verdicts in words and
  the figure; the Experiments page lists it;
- launching the toy-3d preset (quick) from the Experiments page queues a group whose task the
  serve's real worker runs (``alignscope experiment toy-3d --quick --group …``): the page shows it
  running, its first run live, and "the summary appears when the runs finish"; stopping that run
  ends the group as failed, drawn with the error and a partial summary. (The whole toy group takes
  about a minute on an idle 2-core CPU, several on a loaded one: the test does not wait for it.)

Screenshots: artifacts/screenshots/group.png (the win-rate group), groups.png, group-running.png,
group-failed.png.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ALIGNSCOPE, REPO, Service, Tab, stop_process

pytestmark = pytest.mark.browser
READY = "document.querySelector('#app').dataset.ready === '1'"
FIGURE_READY = "document.querySelector('#group-figure')?.dataset.ready === '1'"
CITATION = "Wu et al., β-DPO (arXiv 2407.08639v2) Table 1 — GPT-4 win rate (%) vs chosen on Anthropic HH"
TINY = {"source": "tiny", "tiny": {"hidden_size": 32, "intermediate_size": 64}}
DATA = {"constructed": {"tasks": ["sort"], "num_pairs": 64}, "max_length": 48, "max_prompt_length": 24}
MINI = {  # a real experiment of two 2-step runs of a tiny model, evaluated at T = 0 and T = 1
    "name": "mini-ablation",
    "title": "Mini β-DPO ablation (browser test)",
    "description": "A 3-step SFT warm-up of a tiny GPT-NeoX, then DPO and β-DPO for 2 steps each.",
    "warmup": {"model": TINY, "data": DATA, "steps": 3},
    "base": {
        "model": {"source": "pretrained", "path": "{warmup}"},
        "data": {**DATA, "eval_fraction": 0.2},
        "optim": {"max_steps": 2, "batch_size": 8, "micro_batch_size": 8},
        "evaluation": {"at_end": True, "temperatures": [0.0, 1.0], "num_prompts": 8, "max_new_tokens": 6},
    },
    "runs": [{"label": "DPO"}, {"label": "β-DPO", "set": {"beta_dpo": {"enabled": True}}}],
    "paper": {
        "citation": CITATION,
        "columns": ["Pythia-410M", "Pythia-2.8B"],
        "rows": {"DPO": [26.19, 51.51], "β-DPO": [30.18, 57.07]},
    },
}


@pytest.fixture(scope="module")
def mini_group(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    """`alignscope experiment mini.yaml` on the service's data dir, started now, waited for later."""
    spec = tmp_path_factory.mktemp("experiment") / "mini-ablation.yaml"
    spec.write_text(json.dumps(MINI))  # JSON is YAML
    process = subprocess.Popen(
        [str(ALIGNSCOPE), "experiment", str(spec)], cwd=REPO, env=service.env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    yield process
    stop_process(process)


def finished_group(process: subprocess.Popen, timeout_s: float = 240.0) -> str:
    """The id of the group the experiment command made (it printed "→ group ID"), once it exited 0."""
    _, err = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, err[-3000:]
    return next(line.split("→ group ")[1].split()[0] for line in err.splitlines() if "→ group " in line)


def texts(tab: Tab, selector: str) -> list[str]:
    return [t.strip() for t in tab.page.locator(selector).all_inner_texts()]


def test_a_win_rate_group_shows_ours_next_to_the_papers_numbers(
    service: Service, tab: Tab, mini_group
) -> None:
    group = finished_group(mini_group)
    page = tab.page
    page.goto(f"{service.base}/#/group/{group}")
    page.wait_for_function(FIGURE_READY)
    assert page.locator("#group-status").inner_text() == "succeeded"
    heads = texts(tab, "#summary-table thead th")
    assert heads[:3] == ["method", "ours — win rate vs chosen, % [95 % CI]", "paper"]
    assert heads[3:] == ["T=0", "T=1", "Pythia-410M", "Pythia-2.8B"]
    dpo = page.locator("#summary-table tr[data-label='DPO'] td").all_inner_texts()
    assert len(dpo) == 4 and "[" in dpo[0] and "[" in dpo[1]  # ours: value and its 95 % interval
    assert dpo[2:] == ["26.19", "51.51"]  # the paper's numbers beside ours
    beta = page.locator("#summary-table tr[data-label='β-DPO'] td").all_inner_texts()
    assert beta[2:] == ["30.18", "57.07"]
    assert CITATION in page.locator("#paper-citation").inner_text()
    verdicts = texts(tab, "ul.verdicts li")
    assert len(verdicts) == 2 and all("β-DPO − DPO at T=" in v for v in verdicts)
    assert all("paper +4.78 (mean over its 2 columns)" in v for v in verdicts)  # (3.99 + 5.56) / 2
    assert page.locator("#verdicts .headline").inner_text().startswith("Of 2 comparisons with the paper:")
    traces = page.evaluate("document.querySelector('#group-figure').data.map(t => [t.name, t.x.length])")
    assert traces == [["DPO", 2], ["β-DPO", 2]]
    tab.shoot("group")
    page.goto(f"{service.base}/#/groups")
    page.wait_for_selector("[data-preset='toy-3d']")
    page.wait_for_function(READY)
    assert page.locator("[data-preset]").count() >= 5
    assert page.locator(f"#groups-table tr[data-group='{group}'] .badge.succeeded").count() == 1
    tab.shoot("groups")


def test_launching_a_preset_queues_a_task_that_the_worker_runs(service: Service, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{service.base}/#/groups")
    page.wait_for_function(READY)
    card = page.locator("[data-preset='toy-3d']")
    assert "6 runs" in card.inner_text() and "Yan et al." in card.inner_text()
    assert card.locator("input[name=quick]").is_checked()
    card.locator("button[data-launch='toy-3d']").click()
    page.wait_for_function("location.hash.startsWith('#/group/toy-3d-quick-')")
    group = page.evaluate("decodeURIComponent(location.hash.slice('#/group/'.length))")
    page.wait_for_selector("#group-status")
    page.wait_for_function(READY)
    assert page.locator("#group-status").inner_text() in ("queued", "running")
    assert "The summary appears when the runs finish" in page.locator("#group-summary").inner_text()
    # the serve's own worker consumed the task: the group runs, and its first run shows up live
    page.wait_for_selector("#group-runs a[href^='#/run/']", timeout=90_000)
    assert page.locator("#group-status").inner_text() == "running"
    detail = service.api(f"/groups/{group}")
    assert (detail["quick"], detail["planned_runs"], detail["runs"][0]["preset"]) == (
        True,
        6,
        "experiment:toy-3d",
    )
    assert detail["runs"][0]["name"] == "toy-3d/s1 on/on/seed0" and detail["summary"] is None
    assert " of 6 runs finished" in page.locator("#group-progress").inner_text()
    tab.shoot("group-running")
    # stopping its run ends the group: it fails, with a partial summary of what ran
    stop = urllib.request.Request(
        f"{service.base}/api/runs/{detail['runs'][0]['id']}/stop", b"", method="POST"
    )
    urllib.request.urlopen(stop, timeout=10).close()
    page.wait_for_function(
        "document.querySelector('#group-status')?.textContent === 'failed'", timeout=90_000
    )
    assert "toy-3d/s1 on/on" in page.locator("#group-runs").inner_text()
    assert "s1 on/on seed 0: stopped; 5 runs not started" in page.locator("#group-header .alert").inner_text()
    page.wait_for_function(FIGURE_READY)
    assert "Partial summary" in page.locator("#group-summary").inner_text()
    tab.shoot("group-failed")


def test_a_group_that_finishes_while_its_page_is_open_drops_partial_summary(
    service: Service, tab: Tab, mini_group
) -> None:
    """The experiment command stores the summary, then marks the group finished: a page polling in
    between draws "Partial summary – runs are still going", and must redraw once the group finished
    (issue 19 item 3). The in-between reply is the stored group with its earlier status."""
    assert mini_group.wait(timeout=240) == 0
    group = next(g["id"] for g in service.api("/groups") if g["experiment"] == "mini-ablation")
    stored = service.api(f"/groups/{group}")
    assert stored["status"] == "succeeded" and stored["summary"] is not None
    replies = [json.dumps({**stored, "status": "running"})]  # what a poll read before finish_group

    def in_between_first(route) -> None:
        if replies:
            route.fulfill(status=200, content_type="application/json", body=replies.pop())
        else:
            route.continue_()

    page = tab.page
    page.route(f"**/api/groups/{group}", in_between_first)
    page.goto(f"{service.base}/#/group/{group}")
    page.wait_for_function(FIGURE_READY)
    page.wait_for_function("document.querySelector('#group-status')?.textContent === 'succeeded'")
    page.wait_for_function(
        "!document.querySelector('#group-summary').innerText.includes('Partial summary')", timeout=5000
    )
    assert "Runs are still going" not in page.locator("#group-summary").inner_text()
