"""The launch form's pure parts under node: "clone with edits" sends an optional section (model.lora) and
the loss union whole, since the server cannot set model.lora.r on a parent whose lora is null
(frontend/js/form/overrides.js); lora.target_modules reads a comma-separated list, or the word
all-linear alone (frontend/js/form/controls.js). The drawn form: tests/e2e/test_new_run_lora.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from backend.config_files import ConfigError, apply_overrides, load_preset, validate

FORM = Path(__file__).resolve().parents[2] / "frontend" / "js" / "form"
WHOLES = ["loss", "model.lora"]
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")


def run_js(module: str, call: str) -> object:
    """JSON of ``call`` (a JS expression) with ``module``'s exports in scope."""
    script = (
        f"import * as m from {json.dumps((FORM / module).as_uri())}; console.log(JSON.stringify(m.{call}));"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def overrides(before: dict, after: dict) -> object:
    return run_js(
        "overrides.js", f"overrides({json.dumps(before)}, {json.dumps(after)}, new Set({json.dumps(WHOLES)}))"
    )


def targets(text: str) -> object:
    return run_js("controls.js", f'parseListOrWord({json.dumps(text)}, ["all-linear"])')


LORA = {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["query_key_value"], "export": "none"}


def test_switching_lora_on_in_a_clone_sends_the_section_whole_and_the_server_takes_it() -> None:
    parent = validate(load_preset("tiny-dpo")).model_dump(mode="json")
    edited = json.loads(json.dumps(parent))
    edited["model"]["lora"] = LORA
    edited["optim"]["lr"] = 0.01
    sent = overrides(parent, edited)
    assert sent == {"model.lora": LORA, "optim.lr": 0.01}
    with pytest.raises(ConfigError, match="'lora' is not a section"):  # why: leaf by leaf is refused
        apply_overrides(parent, ["model.lora.r=4"])
    # what POST /runs/ID/clone does with what the form sends
    items = [f"{key}={json.dumps(value)}" for key, value in sent.items()]
    clone = validate(apply_overrides(parent, items))
    assert clone.model.lora is not None and clone.model.lora.r == 4
    assert list(clone.model.lora.target_modules) == ["query_key_value"]
    assert clone.model.lora.export == "none" and clone.optim.lr == 0.01


def test_switching_lora_off_sends_null_and_an_unchanged_lora_sends_nothing() -> None:
    parent = {"model": {"lora": LORA, "source": "tiny"}, "loss": {"kind": "dpo", "beta": 0.1}}
    assert overrides(parent, {**parent, "model": {"lora": None, "source": "tiny"}}) == {"model.lora": None}
    assert overrides(parent, json.loads(json.dumps(parent))) == {}
    changed_r = {**parent, "model": {"lora": {**LORA, "r": 8}, "source": "tiny"}}
    assert overrides(parent, changed_r) == {"model.lora": {**LORA, "r": 8}}
    ipo = {**parent, "loss": {"kind": "ipo", "tau": 0.5}}  # a changed loss kind: the union whole
    assert overrides(parent, ipo) == {"loss": {"kind": "ipo", "tau": 0.5}}


def test_target_modules_reads_a_list_or_the_word_alone() -> None:
    assert targets(" q_proj, v_proj ,") == ["q_proj", "v_proj"]
    assert targets(" all-linear ") == "all-linear"
    assert targets("all-linear, q_proj") == ["all-linear", "q_proj"]  # a list: the server says what is wrong
    assert targets("") == []
