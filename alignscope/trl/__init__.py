"""AlignScope for TRL: ``from alignscope.trl import DPOTrainer`` instead of ``from trl import
DPOTrainer``; see alignscope.trl.trainer (the hooks into TRL), capture (TRL's log-probs), batch_scope
(β-DPO's one calibration per step), recorder, step_values and rows (what is logged). Imports torch,
transformers and TRL."""

from __future__ import annotations

from alignscope.trl.options import BetaDPO, Logging
from alignscope.trl.trainer import DPOTrainer

__all__ = ["BetaDPO", "DPOTrainer", "Logging"]
