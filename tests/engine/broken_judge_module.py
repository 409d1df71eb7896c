"""A module that fails while being imported (tests/engine/test_custom_judge.py)."""

raise RuntimeError("this judge module is broken")
