"""The launch form's optional sections in a real browser (model.lora, RunConfig's only `Section | None`
field): an "enable" checkbox that shows LoRA's own fields; ticked, the run's stored config has the
adapters as set, unticked it has ``lora: null``; a clone of a LoRA run opens with the box ticked and
its fields filled, and unticking it there clones a full fine-tune (ticking it in a clone of one adds
adapters); a refused nested field (model.lora.r) shows its message next to its input. Console errors
fail each test (conftest.tab)."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.e2e.conftest import REPO, Service, Tab

pytestmark = pytest.mark.browser
SCREENSHOT = REPO / "docs" / "screenshots" / "new-run-lora.png"
ADAPTED = "query_key_value, dense"  # the tiny GPT-NeoX's attention projections


def small_run(tab: Tab, service: Service, name: str) -> None:
    """The New run page on tiny-dpo, cut to a few steps (the preset's micro-batch is 8)."""
    page = tab.page
    page.goto(f"{service.base}/#/new")
    page.select_option("#preset-select", "tiny-dpo")
    page.fill("#f-name", name)
    page.fill("#f-optim-max_steps", "3")
    page.fill("#f-optim-batch_size", "8")
    page.fill("#f-checkpoint_every", "0")


def launch(tab: Tab) -> str:
    """Click launch and return the new run's id (from the run page the form opens)."""
    tab.page.click("#launch")
    tab.page.wait_for_function("location.hash.startsWith('#/run/')")
    return tab.page.evaluate("location.hash").split("/")[2].split("?")[0]


def error_at(tab: Tab, path: str) -> str:
    """The message shown next to the field at dotted ``path`` (waits until there is one)."""
    error = tab.page.locator(f'.field[data-path="{path}"] .field-error')
    error.wait_for()
    return error.inner_text()


def finished(service: Service, run_id: str, timeout_s: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while (run := service.api(f"/runs/{run_id}"))["status"] in ("queued", "running"):  # type: ignore[index]
        assert time.monotonic() < deadline, f"run {run_id} did not finish"
        time.sleep(1)
    return run  # type: ignore[return-value]


def test_lora_checkbox_launches_an_adapter_run_and_clones_fill_it(service: Service, tab: Tab) -> None:
    page = tab.page
    small_run(tab, service, "e2e-lora")
    lora_box = page.locator("#f-model-lora")
    fieldset = page.locator('fieldset[data-path="model.lora"]')
    assert not lora_box.is_checked() and not fieldset.is_visible()  # the preset has no adapters
    toggle_hint = page.locator('.field[data-path="model.lora"] .hint').inner_text()
    assert "train low-rank adapters instead of all weights" in toggle_hint

    lora_box.check()
    assert fieldset.is_visible()
    assert page.input_value("#f-model-lora-r") == "16"  # LoraConfig's defaults
    assert page.input_value("#f-model-lora-alpha") == "32"
    assert page.input_value("#f-model-lora-target_modules") == "all-linear"
    assert page.input_value("#f-model-lora-export") == "adapter"
    assert "Rank of each adapter" in page.locator('.field[data-path="model.lora.r"] .hint').inner_text()
    page.fill("#f-model-lora-r", "4")
    page.fill("#f-model-lora-alpha", "8")
    page.fill("#f-model-lora-target_modules", ADAPTED)
    page.select_option("#f-model-lora-export", "none")
    fieldset.scroll_into_view_if_needed()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tab.shoot("new-run-lora"), SCREENSHOT)

    lora_run = launch(tab)
    run = finished(service, lora_run)
    assert run["status"] == "succeeded", run.get("error")
    assert run["config"]["model"]["lora"] == {
        "r": 4,
        "alpha": 8.0,
        "dropout": 0.0,
        "target_modules": ["query_key_value", "dense"],
        "export": "none",
    }

    page.goto(f"{service.base}/#/new?from={lora_run}")  # clone with edits: the box ticked, fields filled
    page.wait_for_selector("#launch")
    assert lora_box.is_checked() and fieldset.is_visible()
    assert page.input_value("#f-model-lora-r") == "4"
    assert page.input_value("#f-model-lora-target_modules") == ADAPTED
    lora_box.uncheck()
    assert not fieldset.is_visible()
    clone = launch(tab)
    assert service.api(f"/runs/{clone}")["config"]["model"]["lora"] is None  # type: ignore[index]
    assert service.api(f"/runs/{clone}")["parent_id"] == lora_run  # type: ignore[index]

    small_run(tab, service, "e2e-no-lora")  # never ticked: null, none of LoRA's fields sent
    plain = launch(tab)
    assert service.api(f"/runs/{plain}")["config"]["model"]["lora"] is None  # type: ignore[index]
    page.goto(f"{service.base}/#/new?from={plain}")  # and switched on in a clone of a full fine-tune
    page.wait_for_selector("#launch")
    assert not lora_box.is_checked() and not fieldset.is_visible()
    lora_box.check()
    page.fill("#f-model-lora-r", "2")
    page.fill("#f-model-lora-target_modules", "query_key_value")
    adapted = launch(tab)
    lora = service.api(f"/runs/{adapted}")["config"]["model"]["lora"]  # type: ignore[index]
    assert lora["r"] == 2 and lora["target_modules"] == ["query_key_value"] and lora["alpha"] == 32.0
    for run_id in (clone, plain, adapted):
        assert finished(service, run_id)["status"] == "succeeded"


def test_a_refused_lora_field_shows_its_message_next_to_its_input(service: Service, tab: Tab) -> None:
    def runs_named(name: str) -> int:
        return sum(r["name"] == name for r in service.api("/runs"))  # type: ignore[union-attr, index]

    tab.expected.append("status of 422")  # the refused config itself
    page = tab.page
    small_run(tab, service, "e2e-bad-lora")
    page.check("#f-model-lora")
    page.fill("#f-model-lora-r", "0")
    page.fill("#f-model-lora-target_modules", "q_proj; rm -rf")
    page.click("#launch")
    assert "greater than or equal to 1" in error_at(tab, "model.lora.r")
    assert "is not a module" in error_at(tab, "model.lora.target_modules")
    assert page.locator('.field[data-path="model.lora.r"]').evaluate("n => n.classList.contains('invalid')")
    assert page.evaluate("location.hash") == "#/new"
    assert runs_named("e2e-bad-lora") == 0
