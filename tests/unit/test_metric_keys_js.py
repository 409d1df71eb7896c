"""frontend/js/keys.js mirrors contracts/metric_keys.py: every metric key the engine emits has its
name in the dashboard, and the dashboard names no key the engine does not define."""

from __future__ import annotations

import re
from pathlib import Path

from contracts import metric_keys

KEYS_JS = Path(__file__).resolve().parents[2] / "frontend" / "js" / "keys.js"


def python_keys() -> set[str]:
    """Every module-level metric-key constant (an upper-case name bound to a "a/b" string)."""
    return {
        value
        for name, value in vars(metric_keys).items()
        if name.isupper() and isinstance(value, str) and "/" in value and not name.endswith("_PREFIX")
    }


def js_keys(text: str) -> set[str]:
    """The values of the frozen ``K`` object in keys.js."""
    body = re.search(r"export const K = Object\.freeze\(\{(.*?)\n\}\);", text, re.S)
    assert body, "keys.js no longer defines `export const K = Object.freeze({...});`"
    return set(re.findall(r'^\s*\w+:\s*"([^"]+)",?\s*$', body.group(1), re.M))


def js_prefix(text: str) -> str:
    found = re.search(r'export const WIN_RATE_PREFIX = "([^"]+)";', text)
    assert found, "keys.js no longer defines WIN_RATE_PREFIX"
    return found.group(1)


def test_keys_js_equals_the_python_metric_keys() -> None:
    text = KEYS_JS.read_text()
    ours, theirs = python_keys(), js_keys(text)
    assert len(ours) > 40  # the parser found the constants
    assert ours - theirs == set(), "keys in contracts/metric_keys.py missing from frontend/js/keys.js"
    assert theirs - ours == set(), "keys in frontend/js/keys.js that contracts/metric_keys.py does not define"
    assert js_prefix(text) == metric_keys.EVAL_WIN_RATE_PREFIX + "/"


def test_the_parser_sees_a_drift(tmp_path: Path) -> None:
    """The comparison is not vacuous: a renamed key in keys.js is a difference."""
    text = KEYS_JS.read_text().replace('"train/loss"', '"train/loss_renamed"')
    assert metric_keys.TRAIN_LOSS not in js_keys(text)
    assert "train/loss_renamed" in js_keys(text)
