"""Every deployment setting the API, the workers and the client (alignscope) read is documented for
operators (README.md, docs/API.md or SECURITY.md), as datasette fails a build on an undocumented
setting."""

from __future__ import annotations

import re
from pathlib import Path

import alignscope.run
import backend.api.options
import backend.settings
import worker.cli.sync_command

REPO = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented():
    names = set()
    for module in (backend.settings, backend.api.options, alignscope.run, worker.cli.sync_command):
        names |= set(re.findall(r"\bALIGNSCOPE_[A-Z_]+[A-Z]\b", Path(module.__file__).read_text()))
    docs = "".join((REPO / name).read_text() for name in ("README.md", "docs/API.md", "SECURITY.md"))
    assert len(names) >= 15
    assert sorted(name for name in names if name not in docs) == []
