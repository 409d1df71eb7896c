"""The writer side of a TRL run (the main process only): opens the AlignScope run, keeps a logged
step's micro-batches, and at TRL's log turns them into metric points, pair records and texts.
Other ranks hold no Recorder; they only take part in the gathers (alignscope.trl.trainer)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import alignscope
from alignscope.trl.options import Logging
from alignscope.trl.step_values import MicroBatch, pair_records, signal_values, step_values, trl_values
from contracts import metric_keys as mk
from contracts.config import DiagnosticsConfig
from contracts.events import MetricPoint, PairText
from worker.alignment.diagnostics import ThreeDMonitor


class Recorder:
    """One run's writer: ``add`` micro-batches of a step, ``emit`` them with TRL's logs."""

    def __init__(
        self, options: Logging, name: str, config: Mapping[str, Any], extra: Mapping[str, Any]
    ) -> None:
        self.run = alignscope.init(name, config, url=options.url, token=options.token, source="trl",
                                   environment_extra=extra, spool_dir=options.spool_dir)  # fmt: skip
        self.beta0 = float(config["loss"]["beta"])
        self.batches: dict[int, list[MicroBatch]] = {}
        self.texts: dict[str, PairText] = {}
        self.sent: set[str] = set()
        d = DiagnosticsConfig()  # the engine's defaults for the 3D detectors
        self.monitor = ThreeDMonitor(d.window, d.kappa, d.consecutive, d.slope_eps, d.drawdown)

    def add(self, step: int, batch: MicroBatch, texts: list[PairText]) -> None:
        self.batches.setdefault(step, []).append(batch)
        for text in texts:
            if text.pair_id not in self.sent:
                self.texts.setdefault(text.pair_id, text)

    def emit(self, step: int, logs: Mapping[str, float], max_steps: int) -> None:
        """The step's points (TRL's logs, our means, the 3D signals) and its pair records."""
        values = trl_values(dict(logs))
        batches = self.batches.pop(step, [])
        self.batches = {s: b for s, b in self.batches.items() if s > step}
        records = pair_records(step, batches)
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
        texts = [self.texts.pop(r.pair_id) for r in records if r.pair_id in self.texts]
        self.sent.update(t.pair_id for t in texts)
        now = time.time()
        points = [MetricPoint(key, step, value, now) for key, value in values.items()]
        message = f"step {step}/{max_steps}" if max_steps > 0 else f"step {step}"
        message = "; ".join([*alerts, message])[:2000]  # a fired alert is named in the header
        self.run.log_step(step, points, records, texts, message=message, progress=progress)


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data (unknown objects as their str)."""
    return json.loads(json.dumps(value, default=str))
