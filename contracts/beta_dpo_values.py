"""A step's β-DPO summaries under their metric keys, from its calibrations: the one place both the
engine (worker.engine.step_metrics) and alignscope.trl (step_values) compute them, so a native and an
external run log the same values (SCIENCE.md product decisions 6 and 7, docs/decisions/0061)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from contracts import metric_keys as mk


class CalibrationSummary(Protocol):
    """What is read of a ``worker.alignment.beta_dpo.Calibration`` (contracts may not import it)."""

    m0: float
    sigma: float
    m_bar_kept: float
    m_bar_all: float
    filtered_high: int
    filtered_low: int


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def beta_dpo_values(calibrations: Sequence[CalibrationSummary | None]) -> dict[str, float]:
    """M0/σ after the step's last calibration, their step means when the step had several (scope
    micro_batch with accumulation: the authors log those), M̄ and the filtered counts; ``calibrations``
    has one entry per micro-batch (None without β-DPO; the same object repeated with scope batch, which
    counts once). Empty without β-DPO."""
    present = list({id(c): c for c in calibrations if c is not None}.values())
    if not present:
        return {}
    last = present[-1]
    values = {mk.BDPO_M0: last.m0, mk.BDPO_SIGMA: last.sigma}
    if len(present) > 1:
        values[mk.BDPO_M0_STEP_MEAN] = _mean([c.m0 for c in present])
        values[mk.BDPO_SIGMA_STEP_MEAN] = _mean([c.sigma for c in present])
    values[mk.BDPO_M_BAR_KEPT] = _mean([c.m_bar_kept for c in present])
    values[mk.BDPO_M_BAR_ALL] = _mean([c.m_bar_all for c in present])
    values[mk.BDPO_FILTERED_HIGH] = float(sum(c.filtered_high for c in present))
    values[mk.BDPO_FILTERED_LOW] = float(sum(c.filtered_low for c in present))
    return values
