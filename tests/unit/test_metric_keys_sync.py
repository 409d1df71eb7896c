"""contracts/metric_keys.py is the single source of metric names; frontend/js/keys.js must name exactly
the same keys (a key added on one side only is a chart that never draws, or a name nobody emits)."""

from __future__ import annotations

import re
from pathlib import Path

from contracts import metric_keys as mk

KEYS_JS = Path(__file__).resolve().parents[2] / "frontend" / "js" / "keys.js"


def js_keys() -> dict[str, str]:
    text = KEYS_JS.read_text()
    block = re.search(r"export const K = Object\.freeze\(\{(.*?)\}\);", text, re.S)
    assert block, "keys.js must define K = Object.freeze({...})"
    return dict(re.findall(r'(\w+):\s*"([^"]+)"', block.group(1)))


def test_keys_js_and_metric_keys_name_the_same_keys() -> None:
    python = {v for k, v in vars(mk).items() if k.isupper() and isinstance(v, str) and "/" in v}
    python.discard(mk.EVAL_WIN_RATE_PREFIX)
    javascript = set(js_keys().values())
    assert python - javascript == set(), "keys in metric_keys.py missing from keys.js"
    assert javascript - python == set(), "keys in keys.js not in metric_keys.py"
    prefix = re.search(r'WIN_RATE_PREFIX = "([^"]+)"', KEYS_JS.read_text())
    assert prefix and prefix.group(1) == mk.EVAL_WIN_RATE_PREFIX + "/"
