"""frontend/js/group/caveat.js under node: a quick group whose verdicts disagree with the paper says the
runs may have been too short (issue 19 item 9), with the step counts of the experiment."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CAVEAT = Path(__file__).resolve().parents[2] / "frontend" / "js" / "group" / "caveat.js"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")


def caveat(group: dict, summary: dict, experiment: dict | None) -> str | None:
    script = (
        f"import {{ quickCaveat }} from {json.dumps(CAVEAT.as_uri())};"
        f"const args = {json.dumps([group, summary, experiment])};"
        "console.log(JSON.stringify(quickCaveat(...args)));"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


TOY = {"steps": [3000], "quick_steps": [1500]}
MIXED = {"verdicts": [{"category": "agrees"}, {"category": "disagrees"}, {"category": "noisy"}]}


def test_a_quick_group_with_disagreeing_verdicts_says_the_runs_were_short() -> None:
    text = caveat({"quick": True}, MIXED, TOY)
    assert text.startswith("This is a quick run (1500 steps per run instead of 3000 steps): 2 of 3 verdicts")
    assert "too short" in text


def test_no_caveat_for_a_full_group_or_agreeing_verdicts() -> None:
    assert caveat({"quick": False}, MIXED, TOY) is None
    assert caveat({"quick": True}, {"verdicts": [{"category": "agrees"}]}, TOY) is None
    assert "quick run:" in caveat({"quick": True}, MIXED, None)  # the preset is gone: no step counts
