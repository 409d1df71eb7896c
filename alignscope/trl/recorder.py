"""The writer side of a TRL run (the main process only): opens the AlignScope run, keeps a logged
step's micro-batches, and at TRL's log turns them into metric points (here: TRL's values, the batch
means, β-DPO summaries, the 3D signals and alerts, whose monitor must see the steps in order) and
hands the pair records and texts over as a ``StepRows`` that the sender thread builds (alignscope.trl.rows).
Other ranks hold no Recorder; they only take part in the gathers (alignscope.trl.trainer)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

import alignscope
from alignscope.trl.options import Logging
from alignscope.trl.rows import StepRows
from alignscope.trl.step_values import COLUMNS, MicroBatch, signal_values, step_values, trl_values
from contracts import metric_keys as mk
from contracts.config import DiagnosticsConfig
from worker.alignment.beta_dpo import Calibration
from worker.alignment.diagnostics import ThreeDMonitor

Pending = tuple[list[tuple], Tensor, Calibration | None]  # a micro-batch until its step is emitted


class Recorder:
    """One run's writer: ``add`` micro-batches of a step, ``emit`` them with TRL's logs."""

    def __init__(
        self, options: Logging, name: str, config: Mapping[str, Any], extra: Mapping[str, Any]
    ) -> None:
        self.run = alignscope.init(name, config, url=options.url, token=options.token, source="trl",
                                   environment_extra=extra, spool_dir=options.spool_dir)  # fmt: skip
        self.beta0 = float(config["loss"]["beta"])
        self.batches: dict[int, list[Pending]] = {}
        self.sent: set[str] = set()  # pair ids whose texts are sent (read and written by StepRows.texts)
        d = DiagnosticsConfig()  # the engine's defaults for the 3D detectors
        self.monitor = ThreeDMonitor(d.window, d.kappa, d.consecutive, d.slope_eps, d.drawdown)

    def add(self, step: int, pairs: list[tuple], columns: Tensor, calibration: Calibration | None) -> None:
        """A global micro-batch of ``step``: its rows' texts, its (C, N) COLUMNS (still on the device)
        and its calibration."""
        self.batches.setdefault(step, []).append((pairs, columns, calibration))

    def emit(self, step: int, logs: Mapping[str, float], max_steps: int) -> None:
        """The step's points (TRL's logs, our means, the 3D signals) and its pair records and texts."""
        values = trl_values(dict(logs))
        batches = on_host(self.batches.pop(step, []))
        if self.batches:  # micro-batches of steps TRL did not log (e.g. a skipped NaN step)
            self.batches = {s: b for s, b in self.batches.items() if s > step}
        alerts: list[str] = []
        if batches:
            values.update(step_values(batches, self.beta0))
            chosen, rejected = values[mk.LOGRATIO_CHOSEN_PER_TOKEN], values[mk.LOGRATIO_REJECTED_PER_TOKEN]
            signals = self.monitor.update(step, chosen, rejected, values[mk.PAIR_MASS])
            values.update(signal_values(signals))
            alerts = [f"alert {a.name} at step {a.step}: {a.message}" for a in signals.alerts]
        progress = min(step / max_steps, 1.0) if max_steps > 0 else None
        if progress is not None:
            values[mk.PROGRESS] = progress
        now = time.time()
        points = [[key, step, value, now] for key, value in values.items()]  # POINT_COLUMNS rows
        rows = StepRows(step, batches, self.sent)
        message = f"step {step}/{max_steps}" if max_steps > 0 else f"step {step}"
        message = "; ".join([*alerts, message])[:2000]  # a fired alert is named in the header
        self.run.log_step(step, points, rows.pairs, rows.texts, message=message, progress=progress)


def on_host(pending: list[Pending]) -> list[MicroBatch]:
    """The step's micro-batches with their columns on the host: one transfer for the whole step."""
    if not pending:
        return []
    host = torch.cat([columns for _, columns, _ in pending], dim=1).tolist()
    batches, start = [], 0
    for pairs, columns, calibration in pending:
        end = start + columns.shape[1]
        values = {name: row[start:end] for name, row in zip(COLUMNS, host, strict=True)}
        batches.append(MicroBatch(pairs, values, calibration))
        start = end
    return batches


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data (unknown objects as their str)."""
    return json.loads(json.dumps(value, default=str))
