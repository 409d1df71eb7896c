"""A logged step's pair records and pair texts as ingest wire rows (contracts.ingest column orders),
built when the sender thread wires the step's message (alignscope.messages.wire), not on the
training thread: the training thread hands over the step's host columns and the rows' raw texts,
and the content hashes, row lists and text dedupe happen here."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from alignscope.trl.step_values import COLUMNS, MicroBatch
from contracts.pairs import PreferenceRow


def pair_id(texts: tuple[Any, Any, Any]) -> str:
    """The content hash of contracts.pairs (PreferenceRow.pair_id) of raw (prompt, chosen, rejected)."""
    return PreferenceRow(*texts, line=0, source="trl", format="").pair_id


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class StepRows:
    """The records of every pair of a step's micro-batches and the texts of the pairs not sent
    before (``sent``: the pair ids whose texts went out, shared by a run's steps)."""

    def __init__(self, step: int, batches: Sequence[MicroBatch], sent: set[str]) -> None:
        self.step = step
        self.batches = batches
        self.sent = sent
        self._ids: list[list[str]] | None = None

    def ids(self) -> list[list[str]]:
        """Each micro-batch's pair ids (hashed once)."""
        if self._ids is None:
            self._ids = [[pair_id(texts) for texts in batch.pairs] for batch in self.batches]
        return self._ids

    def pairs(self) -> list[list[object]]:
        """PAIR_COLUMNS rows: step, micro_batch, pair_id, COLUMNS (token counts int, kept bool), m0, σ."""
        rows: list[list[object]] = []
        for index, (batch, ids) in enumerate(zip(self.batches, self.ids(), strict=True)):
            cal = batch.calibration
            m0, sigma = (cal.m0, cal.sigma) if cal is not None else (math.nan, math.nan)
            columns = zip(ids, *(batch.columns[name] for name in COLUMNS), strict=True)
            for key, pc, pr, rc, rr, ct, rt, disc, w, kept, beta in columns:
                row = [self.step, index, key, pc, pr, rc, rr, int(ct), int(rt), disc, w, bool(kept), beta]
                rows.append([*row, m0, sigma])
        return rows

    def texts(self) -> list[list[object]]:
        """TEXT_COLUMNS rows of the step's pairs whose texts were not sent before."""
        rows: list[list[object]] = []
        for batch, ids in zip(self.batches, self.ids(), strict=True):
            for key, texts in zip(ids, batch.pairs, strict=True):
                if key not in self.sent:
                    self.sent.add(key)
                    rows.append([key, *(_text(value) for value in texts)])
        return rows
