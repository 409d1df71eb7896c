"""The dashboard in a real browser against a real service: launch from the form and watch the loss
chart grow, reload mid-run and lose nothing, stop; a bad config shows its error next to the field;
the outlier inspector shows filtered pairs with their text; DPO vs β-DPO compared. Every test also
fails on any console error (see conftest.tab). Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.conftest import Service, Tab, clean_env, free_port, start_api, stop_process, wait_healthy

pytestmark = pytest.mark.browser
TOKEN = "e2e-token-0123456789"
POINTS = "Number(document.querySelector('#chart-loss')?.dataset.points || 0)"


def loss_points(tab: Tab) -> int:
    return int(tab.page.evaluate(POINTS))


def wait_points_at_least(tab: Tab, count: int, timeout_ms: int) -> int:
    tab.page.wait_for_function(f"{POINTS} >= {count}", timeout=timeout_ms)
    return loss_points(tab)


def click_a_step(tab: Tab, chart: str) -> None:
    """Click the middle of a chart's plot area (Plotly reports the hovered point, so hover first and
    give it a moment), until the page navigates to the pairs of that step."""
    page = tab.page
    for _ in range(5):
        box = page.locator(f"{chart} .nsewdrag").first.bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x - 5, y)
        page.mouse.move(x, y)
        page.wait_for_timeout(250)
        page.mouse.click(x, y)
        try:
            page.wait_for_function(
                "location.hash.includes('/pairs?') && location.hash.includes('step=')", timeout=2000
            )
            return
        except PlaywrightTimeout:  # the hover was not ready yet: try again
            continue
    raise AssertionError(f"clicking {chart} did not open the pairs of a step")


def beta_run(service: Service, finished: bool = False) -> str:
    """The β-DPO run launched from the form by the live test (stopped early), or one launched here over
    the API; ``finished``: one that ran to its end (its end-of-run evaluation included)."""
    key = "finished_beta_run" if finished else "beta_run"
    if key in service.state:
        return service.state[key]
    preset = next(p for p in service.api("/presets") if p["name"] == "tiny-beta-dpo")
    config = {**preset["config"], "name": "api-beta-dpo"}
    config["optim"] = {**config["optim"], "max_steps": 10, "batch_size": 8, "micro_batch_size": 8}
    request = urllib.request.Request(
        f"{service.base}/api/runs", json.dumps(config).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        run_id = json.loads(reply.read())["id"]
    deadline = time.monotonic() + 120
    while service.api(f"/runs/{run_id}")["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the β-DPO run did not finish"
        time.sleep(1)
    service.state[key] = run_id
    return run_id


def test_bad_config_shows_inline_errors_and_creates_nothing(service: Service, tab: Tab) -> None:
    def form_runs() -> int:  # the form preset's runs (the background tiny-dpo run may appear meanwhile)
        return sum(r["preset"] == "tiny-beta-dpo" for r in service.api("/runs"))

    before = form_runs()
    tab.expected.append("status of 422")  # the refused config itself
    page = tab.page
    page.goto(f"{service.base}/#/new")
    page.select_option("#preset-select", "tiny-beta-dpo")
    page.fill("#f-optim-lr", "10")
    page.fill("#f-loss-beta", "-1")
    page.click("#launch")
    lr_error = page.locator('.field[data-path="optim.lr"] .field-error')
    lr_error.wait_for()
    assert "less than or equal to 1" in lr_error.inner_text()
    # the API names the field as written (loss.beta, not pydantic's loss.dpo.beta)
    assert "greater than 0" in page.locator('.field[data-path="loss.beta"] .field-error').inner_text()
    assert page.locator("#form-errors").is_visible()
    assert page.evaluate("location.hash") == "#/new"
    tab.shoot("new-run-invalid")
    assert form_runs() == before


def test_launch_watch_reload_and_stop(service: Service, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{service.base}/#/new")
    page.select_option("#preset-select", "tiny-beta-dpo")
    page.fill("#f-name", "e2e-beta-dpo")
    page.fill("#f-optim-max_steps", "200")  # stopped long before the end, however fast it runs
    page.fill("#f-optim-batch_size", "8")
    page.fill("#f-optim-micro_batch_size", "8")  # the preset's micro-batch is its whole batch of 16
    tab.shoot("new-run")
    page.click("#launch")
    page.wait_for_function("location.hash.startsWith('#/run/')")
    run_id = page.evaluate("location.hash").split("/")[2]
    service.state["beta_run"] = run_id

    first = wait_points_at_least(tab, 2, 120_000)
    grown = wait_points_at_least(tab, first + 3, 90_000)
    assert grown >= first + 3  # live points appended while it runs
    tab.shoot("run-live")

    before = loss_points(tab)
    page.reload()
    page.wait_for_selector("#app[data-ready='1']")
    assert wait_points_at_least(tab, before, 10_000) >= before  # history + stream: nothing lost

    runs_page = page.context.new_page()  # the runs table follows the all-runs stream
    tab.watch(runs_page)
    runs_page.goto(f"{service.base}/#/runs")
    step_cell = runs_page.locator(f"tr[data-run-id='{run_id}'][data-status='running'] td.num").first
    shown = step_cell.inner_text()
    runs_page.wait_for_function(
        f"document.querySelector(\"tr[data-run-id='{run_id}'] td.num\")?.innerText !== {json.dumps(shown)}"
    )

    page.click("#stop-run")
    page.wait_for_selector("#run-status[data-status='stopped']", timeout=60_000)
    runs_page.wait_for_selector(f"tr[data-run-id='{run_id}'][data-status='stopped']")
    runs_page.close()
    run = service.api(f"/runs/{run_id}")
    assert run["status"] == "stopped"
    assert run["step"] < 200
    page.wait_for_selector("#chart-discrepancy[data-ready='1']")
    tab.shoot("run-stopped")


def test_outlier_inspector_shows_filtered_pairs_with_text(service: Service, tab: Tab) -> None:
    run_id = beta_run(service)
    page = tab.page
    page.goto(f"{service.base}/#/run/{run_id}")
    page.wait_for_selector("#chart-loss[data-ready='1']")
    click_a_step(tab, "#chart-loss")
    page.wait_for_selector(".pair")
    step = int(page.evaluate("new URLSearchParams(location.hash.split('?')[1]).get('step')"))
    assert page.locator(".pair .badge").count() >= 1
    assert page.locator(f".pair-head:has-text('step {step}')").count() == page.locator(".pair").count()
    tab.shoot("pairs-step")

    page.click("[data-tab='pairs']")
    page.wait_for_selector("#summary .pair")
    first = page.locator("#summary .pair").first
    assert "filtered" in first.locator(".pair-head").inner_text()
    for side in ("prompt", "chosen", "rejected"):
        assert first.locator(f".{side} pre").inner_text().strip(), f"{side} text missing"
    tab.shoot("pairs-filtered")

    page.click("[data-tab='records']")
    page.select_option("select[name='side']", "low")
    page.wait_for_selector("#records .pair, #records .state")
    zs = [float(t.split("z ")[1].split()[0]) for t in page.locator("#records .pair-head").all_inner_texts()]
    assert all(z < 0 for z in zs)


def test_runs_table_to_compare_dpo_and_beta_dpo(service: Service, tab: Tab) -> None:
    beta_id, dpo_id = beta_run(service), service.dpo_run_id()
    page = tab.page
    page.goto(f"{service.base}/#/runs")
    for run_id in (dpo_id, beta_id):
        page.check(f"tr[data-run-id='{run_id}'] input[type=checkbox]")
    tab.shoot("runs")
    page.click("#compare-selected")
    page.wait_for_selector("#app[data-ready='1']")
    loss = page.locator(".chart[data-key='train/loss']")
    assert loss.locator(".scatterlayer .trace").count() == 2
    legend = loss.locator(".legend").text_content() or ""
    assert "beta_dpo.enabled=true" in legend and "beta_dpo.enabled=false" in legend
    assert "beta_dpo.enabled" in page.locator("#config-diff").inner_text()
    page.wait_for_selector("#chart-pair-aligned[data-ready='1']", timeout=30_000)
    page.wait_for_selector("#chart-distribution[data-ready='1']")
    tab.shoot("compare")


@pytest.fixture
def guarded(tmp_path) -> Iterator[str]:
    """The API and dashboard behind ALIGNSCOPE_API_TOKEN (no worker: launched runs stay queued)."""
    port = free_port()
    server = start_api(clean_env(tmp_path, ALIGNSCOPE_API_TOKEN=TOKEN), port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, server, token=TOKEN)
        yield base
    finally:
        stop_process(server)


def test_behind_login_launch_stop_delete_upload_and_group(guarded: str, tab: Tab, tmp_path) -> None:
    tab.expected.append("/favicon.ico")  # the /login page's automatic icon request, refused before login
    page = tab.page
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{guarded}/#/runs")
    page.wait_for_url("**/login?next=**")
    tab.shoot("login")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#app .state-empty")
    assert "No runs yet" in page.inner_text("#app")

    page.goto(f"{guarded}/#/new")
    page.select_option("#preset-select", "tiny-dpo")
    page.fill("#f-name", "queued-behind-login")
    page.click("#launch")
    page.wait_for_selector("#run-status[data-status='queued']")
    page.wait_for_selector("#panel-loss .state-empty:has-text('Queued')")
    tab.shoot("run-queued")
    page.click("#stop-run")  # a POST with the session cookie: needs the X-CSRF-Token header
    page.wait_for_selector("#run-status[data-status='stopped']")

    page.goto(f"{guarded}/#/runs")
    row = page.locator("tr:has-text('queued-behind-login')")
    row.locator("button:has-text('Delete')").click()
    page.wait_for_selector("#app .state-empty:has-text('No runs yet')")

    rows = [
        {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"},
        {"prompt": "Sort: 3 1 2", "chosen": "1 2 3", "rejected": "3 2 1"},
        {"prompt": "no rejected here", "chosen": "x"},
    ]
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps(row) + "\n" for row in rows))
    page.goto(f"{guarded}/#/new")
    page.select_option("#preset-select", "tiny-dpo")
    note = page.locator("#offered-evaluation-judge-endpoint-note")
    page.wait_for_function("document.querySelector('#offered-evaluation-judge-endpoint-note')?.textContent")
    assert note.text_content() == "none configured by the operator"  # no ALIGNSCOPE_JUDGE_ENDPOINTS here
    assert "on this deployment" in page.locator("#cap-num_processes").text_content()
    page.set_input_files("#dataset-upload", str(small))  # multipart POST: CSRF header too
    report = page.locator("#dataset-report")
    report.locator("text=2 valid, 1 invalid").wait_for()
    assert "line 3" in report.inner_text()
    headers = report.locator("th").all_inner_texts()
    assert headers == ["Line", "Field", "Problem", "Line", "Prompt", "Chosen", "Rejected"]
    assert page.input_value("#f-data-path").endswith(".jsonl")
    assert page.input_value("#f-data-source") == "file"
    tab.expected.append("status of 422")  # the refused launch below, logged by the browser
    page.click("#launch")  # 2 valid rows cannot fill tiny-dpo's micro-batch of 8: refused before queueing
    refusal = page.locator("text=cannot fill one micro-batch of 8 pairs").first
    refusal.wait_for()
    tab.shoot("new-run-too-few-rows")

    more = [{"prompt": f"What is {i} + 1?", "chosen": str(i + 1), "rejected": str(i)} for i in range(10)]
    upload = tmp_path / "pairs.jsonl"
    upload.write_text("".join(json.dumps(row) + "\n" for row in [*more, rows[2]]))
    page.set_input_files("#dataset-upload", str(upload))
    report.locator("text=10 valid, 1 invalid").wait_for()
    assert "line 11" in report.inner_text()
    assert page.locator("#form-errors").is_hidden()  # the refusal was about the other file
    options = page.locator("#dataset-select option").count()
    page.set_input_files("#dataset-upload", str(upload))  # the same file again: no second dataset
    page.wait_for_selector("#dataset-reused")
    assert page.locator("#dataset-select option").count() == options
    tab.shoot("new-run-dataset")

    page.fill("#group-name", "e2e-ablations")
    page.click("#launch-group")
    page.wait_for_function("location.hash.startsWith('#/compare?runs=')")
    assert len(page.evaluate("location.hash").split("=")[1].split(",")) == 4
    page.wait_for_selector("#app[data-ready='1']")
    diff = page.locator("#config-diff").inner_text()
    assert "beta_dpo.dynamic_beta" in diff and "beta_dpo.filtering" in diff
    tab.shoot("compare-queued-group")
