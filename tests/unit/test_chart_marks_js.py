"""frontend/js/charts.js under node (issue 19 item 9): alert marks closer than the label gap share one
line and label ("D1 · D3"), never two labels printed over each other; the S_l axis keeps S_l = 1 in view
and leaves a ratio's spikes out."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CHARTS = Path(__file__).resolve().parents[2] / "frontend" / "js" / "charts.js"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")


def run(expression: str) -> object:
    script = f"import * as c from {json.dumps(CHARTS.as_uri())}; console.log(JSON.stringify({expression}));"
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_close_alert_marks_share_one_label() -> None:
    marks = (
        '[{step: 21, label: "D3"}, {step: 20, label: "D1"}, {step: 26, label: "D2"}, {step: 60, label: "x"}]'
    )
    shapes = run(f"c.stepLines({marks}, (s) => s, 2.4).map((s) => [s.x0, s.label.text])")
    assert shapes == [[20, "D1 · D3"], [26, "D2"], [60, "x"]]
    assert run(f"c.stepLines({marks}, (s) => s).length") == 4  # no gap: every mark its own line


def test_share_range_keeps_one_in_view_and_cuts_spikes() -> None:
    values = [0.2, 0.3, 0.25, 0.4, 0.35, 0.3, 0.28, 0.33, 0.31, -30.0, 25.0, None]
    low, high = run(f"c.robustRange({json.dumps(values)}, [0, 1])")
    assert low < 0 < 1 < high < 2  # S_l = 1 shown; the −30 and 25 spikes do not flatten the rest
    assert run("c.robustRange([null], [0, 1])") is None
